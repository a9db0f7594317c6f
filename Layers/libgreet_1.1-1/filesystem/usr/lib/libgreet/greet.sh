# libgreet 1.1: greeting functions for POSIX shell scripts. Source it, do not run it.
GREET_LIBVERSION=1.1

greet_message() {
    printf 'Hello, %s!\n' "${1:-world}"
}

greet_shout() {
    greet_message "$@" | tr '[:lower:]' '[:upper:]'
}
