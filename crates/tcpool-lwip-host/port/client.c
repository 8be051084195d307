/*
 * Test clients on lwIP's raw TCP API, for tcpool's tests of servers that run
 * over lwIP's socket API in the same process.
 *
 * Why not sockets: the socket table is the server's scarce resource (10
 * sockets, as on ESP-IDF), and the tests want a 4-slot server with 6
 * clients on it, or the table full on purpose. Raw-API clients take TCP
 * PCBs, not sockets, so the server sees the socket table it would see in a
 * firmware, while the connections still cross lwIP's TCP and its loopback
 * interface for real.
 *
 * Every client's state is touched only on the tcpip thread: the functions
 * called from other threads marshal themselves there with tcpip_api_call
 * and wait for the result (LWIP_TCPIP_CORE_LOCKING is 0, as on ESP-IDF).
 * Received data is queued as pbufs and acknowledged to the peer (tcp_recved)
 * only when the test reads it, so a client that does not read applies real
 * back-pressure through the TCP window.
 */
#include "lwip/opt.h"
#include "lwip/tcp.h"
#include "lwip/pbuf.h"
#include "lwip/ip_addr.h"
#include "lwip/priv/tcpip_priv.h"

#include <stdlib.h>
#include <string.h>

enum client_state {
  CLIENT_CONNECTING = 0,
  CLIENT_CONNECTED = 1,
  /* The PCB is gone: reset by the peer, refused, or timed out. */
  CLIENT_FAILED = 2,
};

struct tcpool_client {
  struct tcp_pcb *pcb;
  /* Received and not yet read; acknowledged to the peer as it is read. */
  struct pbuf *rx;
  enum client_state state;
  /* The peer's FIN has arrived (after everything in `rx`). */
  int peer_fin;
  /* Why the PCB went away (err_t from the error callback). */
  err_t failure;
  u16_t local_port;
};

/* Results of tcpool_client_recv besides a byte count. */
#define TCPOOL_CLIENT_WOULD_BLOCK (-1)
#define TCPOOL_CLIENT_RESET (-2)

/* ---- callbacks (tcpip thread) ---- */

static err_t client_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
  struct tcpool_client *c = (struct tcpool_client *)arg;
  LWIP_UNUSED_ARG(pcb);
  if (c != NULL && err == ERR_OK) {
    c->state = CLIENT_CONNECTED;
  }
  return ERR_OK;
}

static err_t client_received(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
  struct tcpool_client *c = (struct tcpool_client *)arg;
  LWIP_UNUSED_ARG(pcb);
  LWIP_UNUSED_ARG(err);
  if (c == NULL) {
    if (p != NULL) {
      pbuf_free(p);
    }
    return ERR_OK;
  }
  if (p == NULL) {
    c->peer_fin = 1;
  } else if (c->rx == NULL) {
    c->rx = p;
  } else {
    pbuf_cat(c->rx, p);
  }
  return ERR_OK;
}

/* The PCB has been freed by lwIP (reset, abort, timeout): forget it. */
static void client_failed(void *arg, err_t err)
{
  struct tcpool_client *c = (struct tcpool_client *)arg;
  if (c != NULL) {
    c->pcb = NULL;
    c->state = CLIENT_FAILED;
    c->failure = err;
  }
}

static void client_detach(struct tcpool_client *c)
{
  if (c->pcb != NULL) {
    tcp_arg(c->pcb, NULL);
    tcp_recv(c->pcb, NULL);
    tcp_err(c->pcb, NULL);
    tcp_sent(c->pcb, NULL);
  }
  if (c->rx != NULL) {
    pbuf_free(c->rx);
    c->rx = NULL;
  }
}

/* ---- calls marshalled to the tcpip thread ---- */

struct client_call {
  struct tcpip_api_call_data base; /* first: tcpip_api_call hands it back */
  struct tcpool_client *client;
  const ip_addr_t *addr;
  u16_t port;
  const u8_t *data;
  u8_t *out;
  size_t len;
  long result;
};

static err_t do_connect(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  struct tcp_pcb *pcb = tcp_new_ip_type(IP_GET_TYPE(call->addr));
  err_t err;
  if (pcb == NULL) {
    call->result = ERR_MEM;
    return ERR_OK;
  }
  tcp_arg(pcb, c);
  tcp_recv(pcb, client_received);
  tcp_err(pcb, client_failed);
  tcp_nagle_disable(pcb);
  c->pcb = pcb;
  err = tcp_connect(pcb, call->addr, call->port, client_connected);
  if (err != ERR_OK) {
    /* Never connected (CLOSED): tcp_close frees it without a segment. */
    client_detach(c);
    c->pcb = NULL;
    tcp_close(pcb);
    call->result = err;
    return ERR_OK;
  }
  c->local_port = pcb->local_port;
  call->result = ERR_OK;
  return ERR_OK;
}

static err_t do_send(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  size_t n;
  err_t err;
  if (c->state == CLIENT_FAILED || c->pcb == NULL) {
    call->result = TCPOOL_CLIENT_RESET;
    return ERR_OK;
  }
  if (c->state == CLIENT_CONNECTING) {
    call->result = 0;
    return ERR_OK;
  }
  n = call->len;
  if (n > tcp_sndbuf(c->pcb)) {
    n = tcp_sndbuf(c->pcb);
  }
  if (n > 0xffff) {
    n = 0xffff;
  }
  if (n == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN) {
    call->result = 0;
    return ERR_OK;
  }
  err = tcp_write(c->pcb, call->data, (u16_t)n, TCP_WRITE_FLAG_COPY);
  if (err == ERR_MEM) {
    call->result = 0;
    return ERR_OK;
  }
  if (err != ERR_OK) {
    /* ERR_CONN: the sending side is shut down. */
    call->result = TCPOOL_CLIENT_RESET;
    return ERR_OK;
  }
  tcp_output(c->pcb);
  call->result = (long)n;
  return ERR_OK;
}

static err_t do_recv(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  size_t want = call->len > 0xffff ? 0xffff : call->len;
  if (c->rx != NULL && want > 0) {
    u16_t n = pbuf_copy_partial(c->rx, call->out, (u16_t)want, 0);
    c->rx = pbuf_free_header(c->rx, n);
    if (c->pcb != NULL) {
      tcp_recved(c->pcb, n);
    }
    call->result = (long)n;
  } else if (c->peer_fin) {
    call->result = 0;
  } else if (c->state == CLIENT_FAILED) {
    call->result = TCPOOL_CLIENT_RESET;
  } else {
    call->result = TCPOOL_CLIENT_WOULD_BLOCK;
  }
  return ERR_OK;
}

static err_t do_shutdown_write(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  if (c->pcb != NULL && c->state == CLIENT_CONNECTED) {
    call->result = tcp_shutdown(c->pcb, 0, 1);
  } else {
    call->result = ERR_CONN;
  }
  return ERR_OK;
}

static err_t do_abort(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  struct tcp_pcb *pcb = c->pcb;
  client_detach(c);
  c->pcb = NULL;
  if (pcb != NULL) {
    tcp_abort(pcb);
  }
  call->result = ERR_OK;
  return ERR_OK;
}

static err_t do_close(struct tcpip_api_call_data *base)
{
  struct client_call *call = (struct client_call *)base;
  struct tcpool_client *c = call->client;
  struct tcp_pcb *pcb = c->pcb;
  /* Unread input stays unacknowledged, so lwIP answers the close with a
     reset, as a BSD stack does when a program closes without reading. */
  client_detach(c);
  c->pcb = NULL;
  call->result = ERR_OK;
  if (pcb != NULL) {
    /* With no receive callback lwIP discards late input and completes the
       close on the peer's FIN by itself. */
    if (tcp_close(pcb) != ERR_OK) {
      tcp_abort(pcb);
    }
  }
  return ERR_OK;
}

static long client_call(tcpip_api_call_fn fn, struct client_call *call)
{
  err_t err = tcpip_api_call(fn, &call->base);
  return err == ERR_OK ? call->result : (long)err;
}

/* ---- the functions the Rust side calls ---- */

/* Starts a connection to 127.0.0.1 port `port`. Returns the client, or
   NULL with *err set to lwIP's error (ERR_MEM: no PCB or no memory). */
struct tcpool_client *tcpool_client_connect(u16_t port, int *err)
{
  struct client_call call;
  ip_addr_t addr;
  long rc;
  struct tcpool_client *c = (struct tcpool_client *)calloc(1, sizeof(*c));
  if (c == NULL) {
    *err = ERR_MEM;
    return NULL;
  }
  IP_ADDR4(&addr, 127, 0, 0, 1);
  memset(&call, 0, sizeof(call));
  call.client = c;
  call.addr = &addr;
  call.port = port;
  rc = client_call(do_connect, &call);
  if (rc != ERR_OK) {
    free(c);
    *err = (int)rc;
    return NULL;
  }
  *err = ERR_OK;
  return c;
}

/* The client's local port (known from the start of the connection). */
u16_t tcpool_client_local_port(const struct tcpool_client *c)
{
  return c->local_port;
}

/* Queues up to `len` bytes: returns how many (0: none fit now, or still
   connecting), or TCPOOL_CLIENT_RESET. */
long tcpool_client_send(struct tcpool_client *c, const u8_t *data, size_t len)
{
  struct client_call call;
  memset(&call, 0, sizeof(call));
  call.client = c;
  call.data = data;
  call.len = len;
  return client_call(do_send, &call);
}

/* Reads up to `len` bytes into `out`: returns how many, 0 at end of stream,
   TCPOOL_CLIENT_WOULD_BLOCK, or TCPOOL_CLIENT_RESET (after any data that
   arrived before the reset). */
long tcpool_client_recv(struct tcpool_client *c, u8_t *out, size_t len)
{
  struct client_call call;
  memset(&call, 0, sizeof(call));
  call.client = c;
  call.out = out;
  call.len = len;
  return client_call(do_recv, &call);
}

/* Sends FIN after what is queued; the client can still read. */
long tcpool_client_shutdown_write(struct tcpool_client *c)
{
  struct client_call call;
  memset(&call, 0, sizeof(call));
  call.client = c;
  return client_call(do_shutdown_write, &call);
}

/* Resets the connection (RST) and frees the client. */
void tcpool_client_abort(struct tcpool_client *c)
{
  struct client_call call;
  memset(&call, 0, sizeof(call));
  call.client = c;
  client_call(do_abort, &call);
  free(c);
}

/* Closes the connection (FIN, or RST if input was left unread) and frees
   the client. */
void tcpool_client_close(struct tcpool_client *c)
{
  struct client_call call;
  memset(&call, 0, sizeof(call));
  call.client = c;
  client_call(do_close, &call);
  free(c);
}
