/*
 * pause: the sandbox ("infra") process of a pod, as the local node's containerd runs it.
 * Holds the pod's namespaces open, sleeps until SIGTERM or SIGINT (then exits 0) and, being
 * PID 1 of the pod when the pid namespace is shared, reaps every orphan that is re-parented
 * to it. Built static (`gcc -static -Os`) by build-pause.sh into an image from scratch.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_VERSION "llm-gateway-pause 1"

static void on_stop(int signo) {
    (void)signo;
    _exit(0);
}

static void on_child(int signo) {
    (void)signo;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int signo, void (*handler)(int), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        puts(PAUSE_VERSION);
        return 0;
    }
    if (getpid() != 1) {
        fputs("pause: warning: not PID 1, orphans of this pod are reaped elsewhere\n", stderr);
    }
    if (handle(SIGINT, on_stop, 0) != 0 || handle(SIGTERM, on_stop, 0) != 0 ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
