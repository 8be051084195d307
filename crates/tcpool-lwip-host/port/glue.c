/*
 * Glue between the Rust crate tcpool-lwip-host and the lwIP build:
 * starting the tcpip thread, and reporting the ABI (constants and layouts)
 * that this lwIP build was compiled with, so that tcpool-lwip can check its
 * per-target constants against what lwIP really uses.
 *
 * Includes follow lwIP's sockets.c: "lwip/opt.h" first, then the socket
 * headers, so every macro seen here is the one sockets.c was compiled with.
 */
#include "lwip/opt.h"
#include "lwip/sockets.h"
#include "lwip/sys.h"
#include "lwip/tcpip.h"
#include "lwip/errno.h"
#include "lwip/api.h"
#include "lwip/priv/sockets_priv.h"
#include "lwip/priv/tcpip_priv.h"

#include <stddef.h>
#include <string.h>

static void tcpool_lwip_host_ready(void *arg)
{
  sys_sem_signal((sys_sem_t *)arg);
}

/* Starts lwIP (tcpip thread, loopback netif) and returns once the tcpip
   thread runs. Must be called once per process. Returns 0 on success. */
int tcpool_lwip_host_start(void)
{
  sys_sem_t ready;
  if (sys_sem_new(&ready, 0) != ERR_OK) {
    return -1;
  }
  tcpip_init(tcpool_lwip_host_ready, &ready);
  sys_sem_wait(&ready);
  sys_sem_free(&ready);
  return 0;
}

struct tcpool_lwip_host_abi_entry {
  const char *name;
  long long value;
};

#define ENTRY(x) { #x, (long long)(x) }
#define SIZE(t) { "sizeof(" #t ")", (long long)sizeof(t) }
#define OFFSET(t, f) { "offsetof(" #t "," #f ")", (long long)offsetof(t, f) }

static const struct tcpool_lwip_host_abi_entry tcpool_lwip_host_abi_table[] = {
  /* the socket table */
  ENTRY(LWIP_SOCKET_OFFSET),
  ENTRY(MEMP_NUM_NETCONN),
  ENTRY(FD_SETSIZE),
  ENTRY(LWIP_SELECT_MAXNFDS),
  /* fcntl */
  ENTRY(F_GETFL),
  ENTRY(F_SETFL),
  ENTRY(O_NONBLOCK),
  /* poll */
  ENTRY(POLLIN),
  ENTRY(POLLOUT),
  ENTRY(POLLERR),
  ENTRY(POLLHUP),
  ENTRY(POLLNVAL),
  /* errno */
  ENTRY(EAGAIN),
  ENTRY(EWOULDBLOCK),
  ENTRY(EINPROGRESS),
  ENTRY(EALREADY),
  ENTRY(EISCONN),
  ENTRY(ENOTCONN),
  ENTRY(ECONNRESET),
  ENTRY(ECONNABORTED),
  ENTRY(EPIPE),
  ENTRY(ENFILE),
  ENTRY(EMFILE),
  ENTRY(ENOMEM),
  ENTRY(ENOBUFS),
  ENTRY(EINVAL),
  ENTRY(EBADF),
  ENTRY(EADDRINUSE),
  ENTRY(ENOPROTOOPT),
  ENTRY(EIO),
  ENTRY(EHOSTUNREACH),
  ENTRY(EOPNOTSUPP),
  ENTRY(ENOSYS),
  /* sockets */
  ENTRY(AF_INET),
  ENTRY(AF_INET6),
  ENTRY(SOCK_STREAM),
  ENTRY(IPPROTO_TCP),
  ENTRY(SOL_SOCKET),
  ENTRY(SO_REUSEADDR),
  ENTRY(SO_KEEPALIVE),
  ENTRY(SO_LINGER),
  ENTRY(SO_ERROR),
  ENTRY(SO_RCVBUF),
  ENTRY(TCP_NODELAY),
  ENTRY(TCP_KEEPIDLE),
  ENTRY(TCP_KEEPINTVL),
  ENTRY(TCP_KEEPCNT),
  ENTRY(SHUT_RD),
  ENTRY(SHUT_WR),
  ENTRY(SHUT_RDWR),
  ENTRY(MSG_DONTWAIT),
  ENTRY(FIONREAD),
  ENTRY(FIONBIO),
  /* layouts */
  SIZE(struct sockaddr_in),
  OFFSET(struct sockaddr_in, sin_len),
  OFFSET(struct sockaddr_in, sin_family),
  OFFSET(struct sockaddr_in, sin_port),
  OFFSET(struct sockaddr_in, sin_addr),
  SIZE(struct sockaddr_in6),
  OFFSET(struct sockaddr_in6, sin6_family),
  OFFSET(struct sockaddr_in6, sin6_port),
  OFFSET(struct sockaddr_in6, sin6_flowinfo),
  OFFSET(struct sockaddr_in6, sin6_addr),
  OFFSET(struct sockaddr_in6, sin6_scope_id),
  SIZE(struct sockaddr_storage),
  SIZE(sa_family_t),
  SIZE(socklen_t),
  SIZE(fd_set),
  SIZE(struct timeval),
  OFFSET(struct timeval, tv_usec),
  SIZE(struct linger),
  SIZE(struct pollfd),
  /* lwIP internals that LwipStack::abort reaches through: a socket's
     netconn, the netconn's TCP PCB, and a tcpip_api_call. */
  OFFSET(struct lwip_sock, conn),
  OFFSET(struct netconn, type),
  OFFSET(struct netconn, state),
  OFFSET(struct netconn, pcb),
  SIZE(enum netconn_type),
  SIZE(enum netconn_state),
  ENTRY(NETCONN_TCP),
  ENTRY(NETCONN_NONE),
  ENTRY(NETCONNTYPE_GROUP(0xff)),
  SIZE(struct tcpip_api_call_data),
  SIZE(err_t),
  ENTRY(ERR_OK),
  { NULL, 0 },
};

/* The table above, terminated by an entry with a NULL name. */
const struct tcpool_lwip_host_abi_entry *tcpool_lwip_host_abi(void)
{
  return tcpool_lwip_host_abi_table;
}

/* Writes the bytes of an fd_set holding only `fd` (set with FD_SET as lwIP
   users do) into `out`, which has room for `len` bytes. Returns
   sizeof(fd_set), or -1 if `len` is too small. */
long tcpool_lwip_host_fd_set_image(int fd, unsigned char *out, size_t len)
{
  fd_set set;
  if (len < sizeof(set)) {
    return -1;
  }
  FD_ZERO(&set);
  FD_SET(fd, &set);
  memcpy(out, &set, sizeof(set));
  return (long)sizeof(set);
}
