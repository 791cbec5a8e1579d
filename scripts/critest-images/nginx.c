/* critest stand-in for the nginx test images, built on busybox httpd.
 *
 * What critest looks at, and how this program provides it:
 *   - comm "nginx" (pidof nginx): the binary is installed as /usr/sbin/nginx;
 *   - /proc/<pid>/cmdline containing "master process": the program re-executes
 *     itself once with argv[0] = "nginx: master process <its command line>";
 *   - /var/run/nginx.pid holding the master's pid;
 *   - HTTP on the port of the first `listen` directive in
 *     /etc/nginx/conf.d/default.conf (80 if none): a worker child runs
 *     `busybox httpd -f` on it, serving /usr/share/nginx/html.
 * SIGTERM, SIGINT and SIGQUIT stop the worker and end the master with 0;
 * the master also ends when its worker does. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFIG "/etc/nginx/conf.d/default.conf"
#define PID_FILE "/var/run/nginx.pid"
#define DOC_ROOT "/usr/share/nginx/html"
#define TITLE "nginx: master process"

static volatile sig_atomic_t worker_pid = 0;

static void on_stop(int sig) {
    (void)sig;
    if (worker_pid > 0) kill((pid_t)worker_pid, SIGTERM);
    unlink(PID_FILE);
    _exit(0);
}

/* The port of the first "listen [addr:]port;" line, or "80". */
static void listen_port(char *port, size_t size) {
    snprintf(port, size, "80");
    FILE *config = fopen(CONFIG, "r");
    if (config == NULL) return;
    char line[512];
    while (fgets(line, sizeof line, config) != NULL) {
        char *word = line + strspn(line, " \t");
        if (strncmp(word, "listen", 6) != 0 || (word[6] != ' ' && word[6] != '\t')) continue;
        char *value = word + 6 + strspn(word + 6, " \t");
        value[strcspn(value, "; \t\r\n")] = '\0';
        char *colon = strrchr(value, ':');
        snprintf(port, size, "%s", colon != NULL ? colon + 1 : value);
        break;
    }
    fclose(config);
}

static void reexec_as_master(int argc, char **argv) {
    size_t length = sizeof TITLE;
    for (int i = 0; i < argc; i++) length += strlen(argv[i]) + 1;
    char *title = malloc(length);
    if (title == NULL) return;
    strcpy(title, TITLE);
    for (int i = 0; i < argc; i++) {
        strcat(title, " ");
        strcat(title, argv[i]);
    }
    char *master_argv[] = {title, NULL};
    execv("/proc/self/exe", master_argv);
    perror("nginx: re-exec");
    free(title);
}

int main(int argc, char **argv) {
    if (strncmp(argv[0], TITLE, strlen(TITLE)) != 0) reexec_as_master(argc, argv);

    char port[64];
    listen_port(port, sizeof port);

    mkdir("/var/run", 0755);
    FILE *pid_file = fopen(PID_FILE, "w");
    if (pid_file != NULL) {
        fprintf(pid_file, "%d\n", (int)getpid());
        fclose(pid_file);
    } else {
        fprintf(stderr, "nginx: cannot write %s: %s\n", PID_FILE, strerror(errno));
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);

    pid_t child = fork();
    if (child < 0) {
        perror("nginx: fork");
        return 1;
    }
    if (child == 0) {
        sa.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGQUIT, &sa, NULL);
        execl("/bin/busybox", "httpd", "-f", "-p", port, "-h", DOC_ROOT, (char *)NULL);
        perror("nginx: exec /bin/busybox httpd");
        _exit(127);
    }
    worker_pid = child;
    fprintf(stderr, "nginx: master %d, worker %d serving %s on port %s\n", (int)getpid(),
            (int)child, DOC_ROOT, port);

    for (;;) {
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0 && errno == EINTR) continue;
        if (done < 0) return 1;
        if (done == child) {
            unlink(PID_FILE);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        }
    }
}
