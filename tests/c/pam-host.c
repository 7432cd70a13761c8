/* PAM benchmark driver in C (run by scripts/bench): what a C host pays, as
 * sshd, login or a C daemon do. A Rust host already has libgcc_s and the Rust
 * runtime's libraries loaded; a C host loads what pam_oidc.so needs on every
 * pam_start (libpam dlopen()s the module) and may unload it at pam_end.
 *
 *   pam-host auth SERVICE USER COUNT   COUNT x pam_start + pam_authenticate + pam_end
 *                                      (the replies, tokens or a password, one a line
 *                                      on stdin; transaction i answers with line i)
 *   pam-host load MODULE COUNT         COUNT x dlopen(MODULE, RTLD_NOW) + dlclose, as
 *                                      libpam loads and unloads a module per transaction
 *
 * Prints `ns_per_op=... ok=...`. */
#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup((const char *)data);
    *resp = r;
    return PAM_SUCCESS;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "load") == 0) {
        long count = atol(argv[3]);
        long ok = 0;
        double t0 = now_ns();
        for (long i = 0; i < count; i++) {
            void *h = dlopen(argv[2], RTLD_NOW);
            if (h) {
                ok++;
                dlclose(h);
            }
        }
        printf("ns_per_op=%.0f ok=%ld\n", (now_ns() - t0) / (double)count, ok);
        return ok == count ? 0 : 1;
    }
    if (argc != 5 || strcmp(argv[1], "auth") != 0) {
        fprintf(stderr, "usage: pam-host auth SERVICE USER COUNT | pam-host load MODULE COUNT\n");
        return 2;
    }
    /* One reply per line; transaction i answers with line i (mod the count): a
     * token logs in once per host, so each transaction needs its own. */
    static char *replies[100000];
    long n = 0;
    char line[65536];
    while (n < 100000 && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!(replies[n++] = strdup(line))) return 2;
    }
    if (n == 0) return 2;
    long count = atol(argv[4]);
    long ok = 0;
    double t0 = now_ns();
    for (long i = 0; i < count; i++) {
        struct pam_conv c = {conv, replies[i % n]};
        pam_handle_t *h = NULL;
        if (pam_start(argv[2], argv[3], &c, &h) != PAM_SUCCESS) return 1;
        int r = pam_authenticate(h, 0);
        ok += r == PAM_SUCCESS;
        pam_end(h, r);
    }
    printf("ns_per_op=%.0f ok=%ld\n", (now_ns() - t0) / (double)count, ok);
    return 0;
}
