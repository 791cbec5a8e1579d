/* critest stand-in for e2e-test-images/nonewprivs: installed setuid root,
 * it says which effective uid it runs with (root unless no_new_privs). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
