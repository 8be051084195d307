//! Support code of the `std_peers` benchmark: the compared echo servers,
//! the client threads that load them and where threads run, the
//! interleaved measurement behind the ratio summary, and the
//! throughput-vs-clients plot.

pub mod affinity;
pub mod clients;
pub mod compare;
pub mod plot;
pub mod report;
pub mod servers;
