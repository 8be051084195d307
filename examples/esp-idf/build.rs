//! Passes ESP-IDF's link arguments (from esp-idf-sys) on to the binary.
fn main() {
    embuild::espidf::sysenv::output();
}
