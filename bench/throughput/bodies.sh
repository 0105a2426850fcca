# Sourced by the bench/ scripts that drive a server with wrk: writes the request bodies they
# send into DIR ($1) and exports their CONTENT_TYPE for bench/throughput/post.lua. Each is a
# multipart form with `image` parts: single.body (one 28×28 MNIST PNG), photo.body (a 534×454
# phone photo), batch32.body (32 MNIST PNGs) and fashion.body (one 28×28 Fashion-MNIST PNG).
boundary=maxmnistbenchboundary
part() { # FILE: one multipart part `image` holding FILE
    printf -- '--%s\r\nContent-Disposition: form-data; name="image"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n' \
        "$boundary" "$(basename "$1")"
    cat "$1"
    printf '\r\n'
}
{ part samples/digit-7.png; printf -- '--%s--\r\n' "$boundary"; } >"$1/single.body"
{ part samples/photo-8-exif.jpg; printf -- '--%s--\r\n' "$boundary"; } >"$1/photo.body"
{ for index in $(seq 0 31); do part "samples/digit-$((index % 10)).png"; done; printf -- '--%s--\r\n' "$boundary"; } >"$1/batch32.body"
{ part samples/fashion-ankle-boot.png; printf -- '--%s--\r\n' "$boundary"; } >"$1/fashion.body"
export CONTENT_TYPE="multipart/form-data; boundary=$boundary"
