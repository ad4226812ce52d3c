// SPDX-License-Identifier: GPL-2.0
/*
 * rig-agent: the guest side of the test rig's command channel (ttyS1).
 *
 * Same protocol as the shell agent in tests/guest/init, but cheap: under the
 * gdbstub every hypercall stop flushes QEMU's translated code, so each fork/exec
 * in the guest costs a lot of wall time. This agent forks once per script, and
 * serves "@cat <file>..." and "@dmesg" without forking at all.
 *
 * In:  <id> <timeout_s> <len(b64)> <b64 script>\n
 * Out: @@ACK <id> | @@NAK <id>, then @@BEGIN <id>\n<b64 output>\n@@END <id> <rc>\n
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DIR_ "/tmp/.agent"

static int tty;

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(tty, p, n);

		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void say(const char *fmt, const char *id, int rc)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), fmt, id, rc);

	if (n > 0)
		write_all(buf, (size_t)n);
}

/*
 * Allocations retried for a while before giving up: under fault injection
 * (tests/scenarios/test_faults.py) the kernel may refuse the agent's memory
 * for a moment, and an agent that dies leaves the rig without a channel.
 */
static void *realloc_retry(void *old, size_t n)
{
	for (int i = 0; i < 500; i++) {
		void *p = realloc(old, n);

		if (p)
			return p;
		usleep(10000);
	}
	_exit(111);
}

/* growable buffer */
struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->n + n + 1)
			cap *= 2;
		b->p = realloc_retry(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = 0;
}

static const char b64c[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64v(int c)
{
	const char *p = c ? strchr(b64c, c) : NULL;

	return p ? (int)(p - b64c) : -1;
}

static size_t b64_decode(const char *in, size_t n, char *out)
{
	size_t o = 0;
	unsigned int acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b64v((unsigned char)in[i]);

		if (v < 0)
			continue; /* '=' and anything else */
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	return o;
}

/* base64 with a newline every 76 characters */
static void b64_send(const char *d, size_t n)
{
	struct buf b = {0};
	char line[80];
	size_t i = 0;
	int col = 0;

	while (i < n) {
		unsigned int v = (unsigned char)d[i] << 16;
		int k = 1;

		if (i + 1 < n) {
			v |= (unsigned char)d[i + 1] << 8;
			k++;
		}
		if (i + 2 < n) {
			v |= (unsigned char)d[i + 2];
			k++;
		}
		line[0] = b64c[(v >> 18) & 63];
		line[1] = b64c[(v >> 12) & 63];
		line[2] = k > 1 ? b64c[(v >> 6) & 63] : '=';
		line[3] = k > 2 ? b64c[v & 63] : '=';
		buf_add(&b, line, 4);
		col += 4;
		if (col >= 76) {
			buf_add(&b, "\n", 1);
			col = 0;
		}
		i += 3;
	}
	if (col)
		buf_add(&b, "\n", 1);
	if (b.n)
		write_all(b.p, b.n);
	free(b.p);
}

static int read_file(const char *path, struct buf *out)
{
	char tmp[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		char msg[512];
		int n = snprintf(msg, sizeof(msg), "cat: %s: %s\n", path, strerror(errno));

		buf_add(out, msg, (size_t)n);
		return 1;
	}
	for (;;) {
		ssize_t r = read(fd, tmp, sizeof(tmp));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf_add(out, tmp, (size_t)r);
	}
	close(fd);
	return 0;
}

static int do_dmesg(struct buf *out)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *kb;
	int n;

	if (len < 16384)
		len = 16384;
	kb = realloc_retry(NULL, (size_t)len);
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, kb, len);
	if (n < 0) {
		free(kb);
		return 1;
	}
	/* strip the "<N>" level prefix of each line, like dmesg(1) */
	for (int i = 0; i < n;) {
		int j = i;

		while (j < n && kb[j] != '\n')
			j++;
		int s = i;

		if (kb[s] == '<') {
			int k = s + 1;

			while (k < j && kb[k] >= '0' && kb[k] <= '9')
				k++;
			if (k < j && kb[k] == '>')
				s = k + 1;
		}
		buf_add(out, kb + s, (size_t)(j - s));
		buf_add(out, "\n", 1);
		i = j + 1;
	}
	free(kb);
	return 0;
}

static volatile sig_atomic_t alarmed;

static void on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

static int run_script(const char *script, size_t n, int tmo, struct buf *out)
{
	int fd = open(DIR_ "/cmd.sh", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	int ofd, status = 0;
	pid_t pid;

	if (fd < 0)
		return 126;
	write(fd, script, n);
	close(fd);
	ofd = open(DIR_ "/out", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ofd < 0)
		return 126;
	pid = fork();
	if (pid < 0) {
		close(ofd);
		return 126;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		dup2(nul, 0);
		dup2(ofd, 1);
		dup2(ofd, 2);
		signal(SIGALRM, SIG_DFL);
		execl("/bin/sh", "sh", DIR_ "/cmd.sh", (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	alarmed = 0;
	if (tmo > 0)
		alarm((unsigned int)tmo);
	for (;;) {
		pid_t w = waitpid(pid, &status, 0);

		if (w == pid)
			break;
		if (w < 0 && errno == EINTR && alarmed) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			alarmed = 0;
		} else if (w < 0 && errno != EINTR) {
			break;
		}
	}
	alarm(0);
	lseek(ofd, 0, SEEK_SET);
	for (;;) {
		char tmp[8192];
		ssize_t r = read(ofd, tmp, sizeof(tmp));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf_add(out, tmp, (size_t)r);
	}
	close(ofd);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void power_off(void)
{
	int fd;

	sync();
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	if (fd >= 0) {
		write(fd, "o", 1);
		close(fd);
	}
	for (;;)
		pause();
}

static int valid_id(const char *id)
{
	if (!*id)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/ttyS1";
	struct termios t;
	struct sigaction sa;
	struct buf in = {0}, last_out = {0};
	char last_id[64] = "";
	int last_rc = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);   /* no SA_RESTART: waitpid returns EINTR */
	signal(SIGPIPE, SIG_IGN);
	mkdir("/tmp", 0777);
	mkdir(DIR_, 0700);

	tty = open(dev, O_RDWR | O_NOCTTY);
	if (tty < 0)
		return 1;
	if (tcgetattr(tty, &t) == 0) {
		cfmakeraw(&t);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		tcsetattr(tty, TCSANOW, &t);
	}
	write_all("@@READY\n", 8);

	for (;;) {
		char *nl;
		char tmp[16384];
		ssize_t r;

		while (!(nl = in.n ? memchr(in.p, '\n', in.n) : NULL)) {
			r = read(tty, tmp, sizeof(tmp));
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				sleep(1);
				continue;
			}
			buf_add(&in, tmp, (size_t)r);
		}
		*nl = 0;
		size_t linelen = (size_t)(nl - in.p) + 1;
		char *line = realloc_retry(NULL, linelen);

		memcpy(line, in.p, linelen);
		memmove(in.p, in.p + linelen, in.n - linelen);
		in.n -= linelen;
		/* fields: id tmo len b64 */
		char *f[4] = {0};
		char *sp = line;
		int nf = 0;

		while (nf < 4 && sp) {
			while (*sp == ' ' || *sp == '\r')
				sp++;
			f[nf++] = sp;
			sp = strchr(sp, ' ');
			if (sp)
				*sp++ = 0;
		}
		if (nf < 3 || !valid_id(f[0]) || strlen(f[0]) >= sizeof(last_id)) {
			free(line);
			continue;
		}
		const char *id = f[0];
		const char *b64 = f[3] ? f[3] : "";
		size_t blen = strlen(b64);

		while (blen && (b64[blen - 1] == '\r' || b64[blen - 1] == ' '))
			blen--;
		if ((size_t)strtoul(f[2], NULL, 10) != blen) {
			say("@@NAK %s\n", id, 0);
			free(line);
			continue;
		}
		say("@@ACK %s\n", id, 0);
		if (!strcmp(id, last_id)) {
			say("@@BEGIN %s\n", id, 0);
			b64_send(last_out.p, last_out.n);
			say("@@END %s %d\n", id, last_rc);
			free(line);
			continue;
		}
		char *script = realloc_retry(NULL, blen + 1);
		size_t sn = b64_decode(b64, blen, script);

		script[sn] = 0;
		if (!strcmp(id, "poweroff")) {
			say("@@BEGIN %s\n", id, 0);
			say("@@END %s %d\n", id, 0);
			power_off();
		}
		last_out.n = 0;
		if (!strncmp(script, "@cat ", 5)) {
			char *save, *p;

			last_rc = 0;
			for (p = strtok_r(script + 5, " \n", &save); p; p = strtok_r(NULL, " \n", &save))
				last_rc |= read_file(p, &last_out);
		} else if (!strncmp(script, "@dmesg", 6)) {
			last_rc = do_dmesg(&last_out);
		} else {
			last_rc = run_script(script, sn, atoi(f[1]), &last_out);
		}
		snprintf(last_id, sizeof(last_id), "%s", id);
		say("@@BEGIN %s\n", id, 0);
		b64_send(last_out.p ? last_out.p : "", last_out.n);
		say("@@END %s %d\n", id, last_rc);
		free(script);
		free(line);
	}
}
