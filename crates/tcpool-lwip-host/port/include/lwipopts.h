/*
 * lwipopts.h for the host build of lwIP used by tcpool's tests.
 *
 * The aim is to behave like lwIP inside an ESP-IDF firmware with the default
 * sdkconfig (components/lwip/port/include/lwipopts.h + Kconfig defaults), so
 * that what the tests pin down (socket limit, ENFILE on accept, backlog, FIN
 * and errno handling) is what firmware sees. Deviations are marked HOST.
 *
 * Written for tcpool; not copied from ESP-IDF.
 */
#ifndef TCPOOL_LWIP_HOST_LWIPOPTS_H
#define TCPOOL_LWIP_HOST_LWIPOPTS_H

/* ---- OS / threading: the unix port (pthreads), tcpip thread ---- */
#define NO_SYS                          0
#define SYS_LIGHTWEIGHT_PROT            1
/* ESP-IDF default: CONFIG_LWIP_TCPIP_CORE_LOCKING=n (API calls are messages
   to the tcpip thread). */
#define LWIP_TCPIP_CORE_LOCKING         0
#define LWIP_TCPIP_CORE_LOCKING_INPUT   0
/* As ESP-IDF: one semaphore per calling thread, full-duplex netconns. */
#define LWIP_NETCONN_SEM_PER_THREAD     1
#define LWIP_NETCONN_FULLDUPLEX         1
#define TCPIP_MBOX_SIZE                 32
#define DEFAULT_TCP_RECVMBOX_SIZE       6
#define DEFAULT_UDP_RECVMBOX_SIZE       6
#define DEFAULT_RAW_RECVMBOX_SIZE       6
#define DEFAULT_ACCEPTMBOX_SIZE         6
#define TCPIP_THREAD_STACKSIZE          0
#define DEFAULT_THREAD_STACKSIZE        0

/* ---- memory: ESP-IDF allocates everything from the heap ---- */
#define MEM_LIBC_MALLOC                 1
#define MEMP_MEM_MALLOC                 1
#if defined __LP64__
#define MEM_ALIGNMENT                   8
#else
#define MEM_ALIGNMENT                   4
#endif

/* ---- the socket table: CONFIG_LWIP_MAX_SOCKETS=10 ----
   NUM_SOCKETS == MEMP_NUM_NETCONN; with MEMP_MEM_MALLOC the netconn pool is
   not a limit, the socket table is (so a full table shows up as ENFILE from
   lwip_accept, as on ESP-IDF). */
#define MEMP_NUM_NETCONN                10
#define MEMP_NUM_TCP_PCB                16
#define MEMP_NUM_TCP_PCB_LISTEN         16
#define MEMP_NUM_UDP_PCB                16
#define MEMP_NUM_RAW_PCB                16

/* ---- sockets API ---- */
#define LWIP_SOCKET                     1
#define LWIP_NETCONN                    1
/* Only the lwip_-prefixed names: nothing named socket/close/select/... may
   be defined, or it would clash with (or replace) the host libc. */
#define LWIP_COMPAT_SOCKETS             0
#define LWIP_POSIX_SOCKETS_IO_NAMES     0
/* ESP-IDF: FD_SETSIZE (64) - CONFIG_LWIP_MAX_SOCKETS (10). */
#define LWIP_SOCKET_OFFSET              54
/* lwIP's own sockaddr/in_addr/... definitions (sin_len + u8 family), as on
   ESP-IDF, not the host's. */
#define LWIP_SOCKET_EXTERNAL_HEADERS    0
#define LWIP_SOCKET_SELECT              1
#define LWIP_SOCKET_POLL                1
#define LWIP_SO_SNDTIMEO                1
#define LWIP_SO_RCVTIMEO                1
#define LWIP_SO_RCVBUF                  1
/* ESP-IDF: CONFIG_LWIP_SO_LINGER (off by default there); on here so that the
   abort path (SO_LINGER 0) is exercised. HOST */
#define LWIP_SO_LINGER                  1
#define SO_REUSE                        1
#define LWIP_TCP_KEEPALIVE              1
#define LWIP_TIMEVAL_PRIVATE            0

/* ---- IP ---- */
#define LWIP_IPV4                       1
#define LWIP_IPV6                       1
#define LWIP_IPV6_MLD                   0
#define LWIP_IPV6_AUTOCONFIG            0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS   0
#define LWIP_ND6_ALLOW_RA_UPDATES       0
/* Needed where pointers are 64 bits (lwIP asserts it in ip6_frag.c). HOST */
#define IPV6_FRAG_COPYHEADER            1
#define LWIP_ICMP                       1
#define LWIP_RAW                        1
#define LWIP_UDP                        1
#define LWIP_IGMP                       0
#define LWIP_DHCP                       0
#define LWIP_AUTOIP                     0
#define LWIP_DNS                        0
/* No Ethernet: the only interface is the loopback one. HOST */
#define LWIP_ARP                        0
#define LWIP_ETHERNET                   0
#define IP_REASSEMBLY                   1
#define IP_FRAG                         1
#define IP_FORWARD                      0

/* ---- TCP: ESP-IDF defaults ---- */
#define LWIP_TCP                        1
#define TCP_MSS                         1440
#define TCP_WND                         (4 * TCP_MSS)
#define TCP_SND_BUF                     (4 * TCP_MSS)
#define TCP_LISTEN_BACKLOG              1
#define TCP_QUEUE_OOSEQ                 1
#define TCP_OVERSIZE                    TCP_MSS
#define TCP_MAXRTX                      12
#define TCP_SYNMAXRTX                   12
#define TCP_MSL                         60000
#define TCP_FIN_WAIT_TIMEOUT            20000
#define TCP_TMR_INTERVAL                250
#define LWIP_WND_SCALE                  0
#define LWIP_NETIF_TX_SINGLE_PBUF       1

/* ---- the loopback interface: 127.0.0.1 (and ::1) with no setup ---- */
#define LWIP_HAVE_LOOPIF                1
#define LWIP_NETIF_LOOPBACK             1
/* ESP-IDF caps the loopback queue at 8 pbufs; uncapped here so that a burst
   of test traffic is not dropped and retransmitted after a 1 s RTO. HOST */
#define LWIP_LOOPBACK_MAX_PBUFS         0

/* ---- misc ---- */
#define LWIP_STATS                      0
#define LWIP_STATS_DISPLAY              0
#define PPP_SUPPORT                     0
#define LWIP_NETIF_API                  0
/* An LWIP_ERROR condition (a misuse caught by a parameter check) returns an
   error instead of aborting the test process. */
#define LWIP_NOASSERT_ON_ERROR          1

#endif /* TCPOOL_LWIP_HOST_LWIPOPTS_H */
