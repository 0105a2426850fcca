# Sourced by the bench scripts that make or score image sets: the Python tools' venv
# bench/.venv-eval, with bench/preprocess/requirements.txt, reinstalled whenever the pins
# change. Sets $venv.
venv=bench/.venv-eval
if ! cmp -s bench/preprocess/requirements.txt "$venv/requirements.txt"; then
    echo "Installing bench/preprocess/requirements.txt into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/preprocess/requirements.txt
    cp bench/preprocess/requirements.txt "$venv/requirements.txt"
fi
