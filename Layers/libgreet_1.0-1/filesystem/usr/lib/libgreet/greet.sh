# libgreet 1.0: greeting functions for POSIX shell scripts. Source it, do not run it.
GREET_LIBVERSION=1.0

greet_message() {
    printf 'Hello, %s!\n' "${1:-world}"
}
