# Sourced by the bench scripts that run Python tools: `bench_venv DIR REQUIREMENTS` makes the
# venv DIR with the exact pins of REQUIREMENTS, reinstalling whenever they change, and sets
# $venv to DIR.
bench_venv() {
    venv=$1
    if ! cmp -s "$2" "$venv/requirements.txt"; then
        echo "Installing $2 into $venv (with torch: a few minutes)" >&2
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$2"
        cp "$2" "$venv/requirements.txt"
    fi
}
