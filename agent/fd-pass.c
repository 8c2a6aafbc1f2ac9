#include "fd-pass.h"

#include <string.h>
#include <sys/socket.h>

bool fd_pass_send(int sock, const int *fds, size_t n, const void *data, size_t len)
{
  char cbuf[CMSG_SPACE(FD_PASS_MAX * sizeof(int))] = { 0 };
  if (n == 0 || n > FD_PASS_MAX || len == 0)
    return false;
  struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  return sendmsg(sock, &msg, MSG_DONTWAIT) == (ssize_t)len;
}

ssize_t fd_pass_receive(int sock, int *fds, size_t n, void *data, size_t cap, bool *cut)
{
  char cbuf[CMSG_SPACE(FD_PASS_MAX * sizeof(int))] = { 0 };
  if (n == 0 || n > FD_PASS_MAX)
    return -1;
  struct iovec iov = { .iov_base = data, .iov_len = cap };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
  ssize_t got = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  struct cmsghdr *c = got >= 1 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(n * sizeof(int)))
    return -1;
  memcpy(fds, CMSG_DATA(c), n * sizeof(int));
  *cut = (msg.msg_flags & MSG_TRUNC) != 0;
  return got;
}
