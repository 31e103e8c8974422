/*
 * herald_relay: moves the bytes of established WebSocket tunnels between two TCP sockets on a
 * thread of its own, with plain recv/send on an epoll loop (what nginx does for an upgraded
 * connection), so a message crossing the balancer costs two system calls and no JavaScript.
 *
 * JavaScript keeps the handshake, the choice of worker, the counters and the logs; once a
 * tunnel is open it hands the two file descriptors over (`add` duplicates them, the caller then
 * destroys its own sockets) and hears back once, when the tunnel has closed.
 *
 * Bytes from one side are written to the other as they come; a side that cannot take more
 * stops reading from its peer (so at most one read, 64 KiB, is held per direction). An
 * end-of-stream is read only once everything before it was written on, and is passed on as a
 * FIN (shutdown(SHUT_WR)) behind those bytes; the other direction keeps working until it ends
 * too, or until the linger time runs out, then both sockets close. Closing at once instead
 * would make the kernel answer the other side's unread bytes with a reset and drop what it
 * still had to send (a final message, a close frame). An error closes both sides at once.
 *
 * Linux only (epoll, eventfd); the balancer uses its JavaScript path elsewhere.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 65536
#define MAX_EVENTS 256
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

/* Why a tunnel ended, as reported to JavaScript. */
enum reason { ENDED_BY_CLIENT = 0, ENDED_BY_WORKER = 1, CLOSED_BY_CALLER = 2, IDLE_TIMEOUT = 3 };

struct tunnel;

/* One socket of a tunnel, plus the bytes read from its peer that it has not taken yet. */
struct side {
  struct tunnel *tunnel;
  int index; /* 0 = client, 1 = worker */
  int fd;
  uint32_t mask; /* events currently registered with epoll */
  char *pending;
  size_t pending_len;
  size_t pending_off;
  int eof; /* this side's end-of-stream has been read (and passed on) */
  int detached; /* out of epoll: hung up while not being read (see run) */
};

struct tunnel {
  struct side side[2];
  uint32_t slot;
  uint32_t generation;
  int closed;
  int armed;          /* registered by the relay thread (the idle scan skips it until then) */
  int first_end;      /* the reason of the first end-of-stream; -1 while none */
  int64_t deadline;   /* half-closed: close both by then (CLOCK_MONOTONIC, ms) */
  int64_t last_active; /* last byte moved either way (CLOCK_MONOTONIC, ms) */
  struct tunnel *prev, *next; /* in the linger list while half-closed */
  struct tunnel *free_next;   /* in the to-free list once closed */
  struct closed_event *event; /* the end report, allocated up front so closing never allocates */
};

/* Work for the relay thread: every epoll registration and every close happens there, so the
 * event masks have a single writer. */
struct command {
  enum { ARM, CLOSE } kind;
  struct tunnel *tunnel; /* ARM */
  double id;             /* CLOSE */
  struct command *next;
};

struct closed_event {
  double id;
  int reason;
  int error;
};

/* Per Node environment (one per process normally; one per worker_thread that loads it). */
struct relay {
  int epfd;
  int wakefd;
  pthread_t thread;
  int running;
  napi_threadsafe_function tsfn;
  int64_t linger_ms;
  int64_t idle_ms;        /* close a tunnel without traffic for this long; 0 = never */
  int64_t next_idle_scan; /* data thread only */
  pthread_mutex_t lock; /* guards slots, free list, commands */
  struct tunnel **slots;
  uint32_t *generations;
  uint32_t nslots;
  uint32_t *free_slots;
  uint32_t nfree;
  struct command *commands; /* newest first */
  int stopping;
  int failed; /* errno of a failed epoll_wait: the thread closed every tunnel and stopped */
  /* data thread only */
  struct tunnel *linger_head, *linger_tail; /* half-closed tunnels, oldest deadline first */
  struct tunnel *to_free;                   /* closed tunnels, freed after the current batch */
  char buffer[READ_SIZE];
};

static double tunnel_id(const struct tunnel *t) {
  return (double)t->generation * (double)(1u << SLOT_BITS) + (double)t->slot;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A side is read until its end, and only while its peer has taken everything read so far. */
static int side_wants_read(const struct side *s) {
  return !s->eof && s->tunnel->side[1 - s->index].pending_len == 0;
}

/* Registers exactly the events a side needs now: readable while its peer has room, writable
 * while bytes wait for it. */
static void update_mask(struct relay *r, struct side *s) {
  uint32_t mask = (side_wants_read(s) ? EPOLLIN | EPOLLRDHUP : 0) | (s->pending_len > 0 ? EPOLLOUT : 0);
  if (s->detached && mask == 0) return;
  if (!s->detached && mask == s->mask) return;
  struct epoll_event ev = { .events = mask, .data.ptr = s };
  epoll_ctl(r->epfd, s->detached ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s->fd, &ev);
  s->detached = 0;
  s->mask = mask;
}

static void notify(struct relay *r, struct tunnel *t, int reason, int error) {
  /* Allocated with the tunnel: without the report JavaScript would never release its counters. */
  struct closed_event *e = t->event;
  t->event = NULL;
  e->id = tunnel_id(t);
  e->reason = reason;
  e->error = error;
  if (napi_call_threadsafe_function(r->tsfn, e, napi_tsfn_nonblocking) != napi_ok) free(e);
}

/* Closes both sockets now and reports it; the memory goes once the current batch of events is
 * handled (a later event of the batch may still point at the tunnel). */
static void close_tunnel(struct relay *r, struct tunnel *t, int reason, int error) {
  if (t->closed) return;
  t->closed = 1;
  if (t->first_end >= 0) {
    /* Half-closed: report the end that started it; leave the linger list. */
    reason = t->first_end;
    error = 0;
    if (t->prev) t->prev->next = t->next;
    else r->linger_head = t->next;
    if (t->next) t->next->prev = t->prev;
    else r->linger_tail = t->prev;
  }
  for (int i = 0; i < 2; i++) {
    if (!t->side[i].detached) epoll_ctl(r->epfd, EPOLL_CTL_DEL, t->side[i].fd, NULL);
    close(t->side[i].fd);
  }
  notify(r, t, reason, error);
  t->free_next = r->to_free;
  r->to_free = t;
}

static void free_tunnel(struct tunnel *t) {
  free(t->side[0].pending);
  free(t->side[1].pending);
  free(t->event);
  free(t);
}

static void free_closed(struct relay *r) {
  if (r->to_free == NULL) return;
  pthread_mutex_lock(&r->lock);
  for (struct tunnel *t = r->to_free, *next; t != NULL; t = next) {
    next = t->free_next;
    r->slots[t->slot] = NULL;
    r->free_slots[r->nfree++] = t->slot;
    free_tunnel(t);
  }
  pthread_mutex_unlock(&r->lock);
  r->to_free = NULL;
}

static int side_reason(const struct side *s) {
  return s->index == 0 ? ENDED_BY_CLIENT : ENDED_BY_WORKER;
}

/* Writes bytes for side `s`; returns 0, or an errno when the socket failed. Bytes the socket
 * does not take are kept (copied) as its pending bytes. */
static int send_to(struct side *s, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(s->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    break;
  }
  if (off < len) {
    char *copy = malloc(len - off);
    if (copy == NULL) return ENOMEM;
    memcpy(copy, data + off, len - off);
    s->pending = copy;
    s->pending_len = len - off;
    s->pending_off = 0;
  }
  return 0;
}

/* Flushes a side's pending bytes; returns 0 or an errno. */
static int flush(struct side *s) {
  while (s->pending_len > 0) {
    ssize_t n = send(s->fd, s->pending + s->pending_off, s->pending_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      s->pending_off += (size_t)n;
      s->pending_len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n < 0 ? errno : EPIPE;
  }
  free(s->pending);
  s->pending = NULL;
  s->pending_off = 0;
  return 0;
}

/* Side `s` has ended. Everything it sent before has been written to its peer already (it is only
 * read while the peer has nothing pending), so the end is passed on now; once both sides have
 * ended, or the linger time is over, both close. */
static void end_of_stream(struct relay *r, struct side *s) {
  struct tunnel *t = s->tunnel;
  struct side *peer = &t->side[1 - s->index];
  s->eof = 1;
  if (peer->eof) {
    close_tunnel(r, t, side_reason(s), 0);
    return;
  }
  t->first_end = side_reason(s);
  shutdown(peer->fd, SHUT_WR);
  t->deadline = now_ms() + r->linger_ms;
  t->prev = r->linger_tail;
  t->next = NULL;
  if (r->linger_tail) r->linger_tail->next = t;
  else r->linger_head = t;
  r->linger_tail = t;
  update_mask(r, s);
}

static void on_readable(struct relay *r, struct side *s) {
  struct tunnel *t = s->tunnel;
  struct side *peer = &t->side[1 - s->index];
  ssize_t n;
  do {
    n = recv(s->fd, r->buffer, READ_SIZE, 0); /* recv, not read: skips the VFS layer */
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    close_tunnel(r, t, side_reason(s), errno);
    return;
  }
  if (n == 0) {
    end_of_stream(r, s);
    return;
  }
  t->last_active = now_ms();
  int err = send_to(peer, r->buffer, (size_t)n);
  if (err != 0) {
    close_tunnel(r, t, side_reason(peer), err);
    return;
  }
  if (peer->pending_len > 0) {
    update_mask(r, s);
    update_mask(r, peer);
  }
}

static void on_writable(struct relay *r, struct side *s) {
  struct tunnel *t = s->tunnel;
  int err = flush(s);
  if (err != 0) {
    close_tunnel(r, t, side_reason(s), err);
    return;
  }
  update_mask(r, s);
  update_mask(r, &t->side[1 - s->index]);
}

/* Registers both sockets of a new tunnel: each is read while its peer has nothing pending (the
 * bytes JavaScript had already read), and written while it has. */
static void arm(struct relay *r, struct tunnel *t) {
  t->armed = 1;
  for (int i = 0; i < 2; i++) {
    struct side *s = &t->side[i];
    s->mask = (side_wants_read(s) ? EPOLLIN | EPOLLRDHUP : 0) | (s->pending_len > 0 ? EPOLLOUT : 0);
    struct epoll_event ev = { .events = s->mask, .data.ptr = s };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
      close_tunnel(r, t, CLOSED_BY_CALLER, errno);
      return;
    }
  }
}

static void run_commands(struct relay *r) {
  uint64_t count;
  ssize_t ignored = read(r->wakefd, &count, sizeof count);
  (void)ignored;
  pthread_mutex_lock(&r->lock);
  struct command *newest = r->commands;
  r->commands = NULL;
  pthread_mutex_unlock(&r->lock);
  struct command *c = NULL; /* oldest first: a tunnel is armed before it can be closed */
  while (newest != NULL) {
    struct command *next = newest->next;
    newest->next = c;
    c = newest;
    newest = next;
  }
  while (c != NULL) {
    struct command *next = c->next;
    if (c->kind == ARM) {
      arm(r, c->tunnel);
      free(c);
      c = next;
      continue;
    }
    uint32_t slot = (uint32_t)((uint64_t)c->id & SLOT_MASK);
    uint32_t generation = (uint32_t)((uint64_t)c->id >> SLOT_BITS);
    pthread_mutex_lock(&r->lock);
    struct tunnel *t = slot < r->nslots ? r->slots[slot] : NULL;
    pthread_mutex_unlock(&r->lock);
    if (t != NULL && t->generation == generation) close_tunnel(r, t, CLOSED_BY_CALLER, 0);
    free(c);
    c = next;
  }
}

static void run_commands(struct relay *r);

/* The relay cannot go on: every tunnel is closed with `error` and later adds are refused. */
static void fail_all(struct relay *r, int error) {
  pthread_mutex_lock(&r->lock);
  r->failed = error ? error : EIO;
  pthread_mutex_unlock(&r->lock);
  /* Commands queued before `failed` was set (adds are refused after it) are handled first. */
  run_commands(r);
  for (uint32_t i = 0; i < r->nslots; i++) {
    pthread_mutex_lock(&r->lock);
    struct tunnel *t = r->slots[i];
    pthread_mutex_unlock(&r->lock);
    if (t != NULL && !t->closed) close_tunnel(r, t, CLOSED_BY_CALLER, error);
  }
}

/* Closes tunnels without traffic for idle_ms (like nginx's proxy_read_timeout). A scan of the
 * slots every idle/4 (10 ms to 1 s): cheaper than keeping an ordered list on every read. */
static void close_idle(struct relay *r, int64_t now) {
  if (r->idle_ms <= 0 || now < r->next_idle_scan) return;
  int64_t step = r->idle_ms / 4;
  r->next_idle_scan = now + (step < 10 ? 10 : step > 1000 ? 1000 : step);
  pthread_mutex_lock(&r->lock);
  for (uint32_t i = 0; i < r->nslots; i++) {
    struct tunnel *t = r->slots[i];
    /* A half-closed tunnel (first_end set) is closed by its linger deadline, which is shorter. */
    if (t != NULL && !t->closed && t->armed && t->first_end < 0 && now - t->last_active >= r->idle_ms) close_tunnel(r, t, IDLE_TIMEOUT, ETIMEDOUT);
  }
  pthread_mutex_unlock(&r->lock);
}

static void *run(void *arg) {
  struct relay *r = arg;
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    /* Every tunnel lingers equally long, so the list is in deadline order. */
    int timeout = -1;
    int64_t now = now_ms();
    while (r->linger_head != NULL && r->linger_head->deadline <= now) close_tunnel(r, r->linger_head, 0, 0);
    if (r->linger_head != NULL) timeout = (int)(r->linger_head->deadline - now);
    close_idle(r, now);
    if (r->idle_ms > 0 && (timeout < 0 || r->next_idle_scan - now < timeout)) timeout = (int)(r->next_idle_scan - now);
    free_closed(r);
    int n = epoll_wait(r->epfd, events, MAX_EVENTS, timeout);
    if (n < 0 && errno != EINTR) {
      /* Only EINTR is expected with a valid epoll descriptor. Anything else would strand the
       * tunnels: close them all (their clients reconnect), refuse new ones (the balancer keeps
       * those on its stream pipes) and end the thread, instead of taking the process down. */
      fail_all(r, errno);
      break;
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) {
        run_commands(r);
        continue;
      }
      struct side *s = events[i].data.ptr;
      if (s->tunnel->closed) continue;
      uint32_t ev = events[i].events;
      if (ev & EPOLLOUT) on_writable(r, s);
      if (s->tunnel->closed) continue;
      if (side_wants_read(s)) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(r, s);
      } else if (ev & EPOLLERR) {
        /* Reported even for a side not being read: it was reset. */
        close_tunnel(r, s->tunnel, side_reason(s), ECONNRESET);
      } else if (ev & EPOLLHUP) {
        /* Hung up while its bytes wait behind the peer's backlog: they are still to be read,
         * once the peer has room. epoll reports a hang-up whatever the mask, so the socket
         * leaves epoll until then (update_mask adds it back). */
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        s->detached = 1;
        s->mask = 0;
      }
    }
    pthread_mutex_lock(&r->lock);
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    if (stopping) break;
  }
  free_closed(r);
  return NULL;
}

/* ---- JavaScript side ---- */

/* Wakes the relay thread: its eventfd is in the epoll set (a saturated counter still wakes it). */
static void wake_relay(struct relay *r) {
  uint64_t one = 1;
  ssize_t ignored = write(r->wakefd, &one, sizeof one);
  (void)ignored;
}

/* Queues a command for the relay thread and wakes it. */
static void push_command(struct relay *r, struct command *c) {
  pthread_mutex_lock(&r->lock);
  c->next = r->commands;
  r->commands = c;
  pthread_mutex_unlock(&r->lock);
  wake_relay(r);
}

static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  struct closed_event *e = data;
  if (env != NULL && callback != NULL) {
    napi_value argv[3], undefined;
    napi_create_double(env, e->id, &argv[0]);
    napi_create_int32(env, e->reason, &argv[1]);
    napi_create_int32(env, e->error, &argv[2]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, callback, 3, argv, NULL);
  }
  free(e);
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static struct relay *get_relay(napi_env env) {
  struct relay *r = NULL;
  napi_get_instance_data(env, (void **)&r);
  return r;
}

static void stop_relay(void *arg) {
  struct relay *r = arg;
  if (!r->running) return;
  pthread_mutex_lock(&r->lock);
  r->stopping = 1;
  pthread_mutex_unlock(&r->lock);
  wake_relay(r);
  pthread_join(r->thread, NULL);
  r->running = 0;
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
  for (uint32_t i = 0; i < r->nslots; i++) {
    struct tunnel *t = r->slots[i];
    if (t == NULL) continue;
    if (!t->closed) {
      close(t->side[0].fd);
      close(t->side[1].fd);
    }
    free_tunnel(t);
  }
  for (struct command *c = r->commands, *next; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  close(r->epfd);
  close(r->wakefd);
  pthread_mutex_destroy(&r->lock);
  free(r->slots);
  free(r->generations);
  free(r->free_slots);
  free(r);
}

/* Undoes a start that failed half-way. */
static napi_value start_failed(napi_env env, struct relay *r, const char *message) {
  if (r->tsfn != NULL) napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
  if (r->epfd >= 0) close(r->epfd);
  if (r->wakefd >= 0) close(r->wakefd);
  pthread_mutex_destroy(&r->lock);
  free(r);
  return throw_error(env, message);
}

/* start(onClosed(id, reason, errno), lingerMs): starts the relay thread of this environment. */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_error(env, "start(onClosed, lingerMs, idleMs?)");
  if (get_relay(env) != NULL) return throw_error(env, "the relay is already started");
  int64_t linger = 0;
  if (napi_get_value_int64(env, argv[1], &linger) != napi_ok || linger < 0 || linger > 3600000) {
    return throw_error(env, "lingerMs must be 0 to 3600000");
  }
  int64_t idle = 0;
  if (argc > 2 && (napi_get_value_int64(env, argv[2], &idle) != napi_ok || idle < 0 || idle > 86400000)) {
    return throw_error(env, "idleMs must be 0 to 86400000");
  }
  struct relay *r = calloc(1, sizeof *r);
  if (r == NULL) return throw_error(env, "out of memory");
  r->linger_ms = linger;
  r->idle_ms = idle;
  pthread_mutex_init(&r->lock, NULL);
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  if (r->epfd < 0 || r->wakefd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wakefd, &ev) != 0) {
    return start_failed(env, r, "epoll/eventfd failed");
  }
  napi_value name;
  napi_create_string_utf8(env, "herald_relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->tsfn) != napi_ok) {
    r->tsfn = NULL;
    return start_failed(env, r, "onClosed must be a function");
  }
  /* The relay never keeps the process alive: the balancer's own server does while it runs. */
  napi_unref_threadsafe_function(env, r->tsfn);
  /* Signals are for Node's own thread: the relay thread starts with all of them blocked. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int created = pthread_create(&r->thread, NULL, run, r);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (created != 0) return start_failed(env, r, "could not start the relay thread");
  r->running = 1;
  napi_set_instance_data(env, r, NULL, NULL);
  napi_add_env_cleanup_hook(env, stop_relay, r);
  return NULL;
}

static int dup_nonblocking(int fd) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return -1;
  int flags = fcntl(copy, F_GETFL);
  if (flags < 0 || fcntl(copy, F_SETFL, flags | O_NONBLOCK) < 0) {
    close(copy);
    return -1;
  }
  return copy;
}

/* Takes bytes already read by JavaScript as a side's first pending bytes. */
static int take_initial(napi_env env, napi_value value, struct side *s) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type == napi_undefined || type == napi_null) return 0;
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, value, &data, &len) != napi_ok) return -1;
  if (len == 0) return 0;
  s->pending = malloc(len);
  if (s->pending == NULL) return -1;
  memcpy(s->pending, data, len);
  s->pending_len = len;
  return 0;
}

/* Undoes a tunnel that never reached the relay thread. */
static void discard(struct tunnel *t, struct command *armed) {
  for (int i = 0; i < 2; i++) {
    if (t->side[i].fd >= 0) close(t->side[i].fd);
    free(t->side[i].pending);
  }
  free(t->event);
  free(t);
  free(armed);
}

/* add(clientFd, workerFd, toClient?, toWorker?) -> id: relays between duplicates of the two
 * descriptors; the caller closes its own. */
static napi_value js_add(napi_env env, napi_callback_info info) {
  struct relay *r = get_relay(env);
  if (r == NULL) return throw_error(env, "the relay is not started");
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fds[2];
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fds[0]) != napi_ok || napi_get_value_int32(env, argv[1], &fds[1]) != napi_ok || fds[0] < 0 || fds[1] < 0) {
    return throw_error(env, "add(clientFd, workerFd, toClient?, toWorker?)");
  }
  struct command *armed = malloc(sizeof *armed);
  struct tunnel *t = armed ? calloc(1, sizeof *t) : NULL;
  struct closed_event *event = t ? malloc(sizeof *event) : NULL;
  if (event == NULL) {
    free(t);
    free(armed);
    return throw_error(env, "out of memory");
  }
  t->event = event;
  t->last_active = now_ms();
  armed->kind = ARM;
  armed->tunnel = t;
  t->first_end = -1;
  for (int i = 0; i < 2; i++) {
    t->side[i].tunnel = t;
    t->side[i].index = i;
    t->side[i].fd = -1;
  }
  if ((argc > 2 && take_initial(env, argv[2], &t->side[0]) != 0) || (argc > 3 && take_initial(env, argv[3], &t->side[1]) != 0)) {
    discard(t, armed);
    return throw_error(env, "toClient/toWorker must be Buffers");
  }
  for (int i = 0; i < 2; i++) {
    t->side[i].fd = dup_nonblocking(fds[i]);
    if (t->side[i].fd < 0) {
      int err = errno;
      discard(t, armed);
      return throw_error(env, err == EMFILE ? "too many open files" : "could not duplicate the socket");
    }
  }
  pthread_mutex_lock(&r->lock);
  if (r->failed) {
    pthread_mutex_unlock(&r->lock);
    discard(t, armed);
    return throw_error(env, "the relay thread has stopped (epoll failed)");
  }
  if (r->nfree == 0) {
    uint32_t grown = r->nslots ? r->nslots * 2 : 1024;
    struct tunnel **slots = grown <= SLOT_MASK ? realloc(r->slots, grown * sizeof *slots) : NULL;
    if (slots) r->slots = slots;
    uint32_t *gens = slots ? realloc(r->generations, grown * sizeof *gens) : NULL;
    if (gens) r->generations = gens;
    uint32_t *free_slots = gens ? realloc(r->free_slots, grown * sizeof *free_slots) : NULL;
    if (free_slots) r->free_slots = free_slots;
    if (free_slots == NULL) {
      pthread_mutex_unlock(&r->lock);
      discard(t, armed);
      return throw_error(env, grown > SLOT_MASK ? "too many tunnels" : "out of memory");
    }
    for (uint32_t i = grown; i > r->nslots; i--) {
      r->slots[i - 1] = NULL;
      r->generations[i - 1] = 0;
      r->free_slots[r->nfree++] = i - 1;
    }
    r->nslots = grown;
  }
  t->slot = r->free_slots[--r->nfree];
  /* 28 bits of generation keep every id an exact double. */
  t->generation = ++r->generations[t->slot] & 0x0FFFFFFF;
  r->slots[t->slot] = t;
  double id = tunnel_id(t);
  /* From here on the tunnel belongs to the relay thread. Queued under the same lock as the
   * `failed` check, so a relay that fails meanwhile still closes (and reports) it. */
  armed->next = r->commands;
  r->commands = armed;
  pthread_mutex_unlock(&r->lock);
  wake_relay(r);
  napi_value result;
  napi_create_double(env, id, &result);
  return result;
}

/* close(id): closes a tunnel now (both sockets); its onClosed call follows. Unknown ids are ignored. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  struct relay *r = get_relay(env);
  if (r == NULL) return NULL;
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double id;
  /* Ids are integers below 2^52 (generation << 24 | slot); anything else names no tunnel. */
  if (argc < 1 || napi_get_value_double(env, argv[0], &id) != napi_ok) return throw_error(env, "close(id)");
  if (!(id >= 0 && id < 4503599627370496.0) || id != (double)(uint64_t)id) return NULL;
  struct command *c = malloc(sizeof *c);
  if (c == NULL) return throw_error(env, "out of memory");
  c->kind = CLOSE;
  c->tunnel = NULL;
  c->id = id;
  push_command(r, c);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL },
    { "add", NULL, js_add, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
