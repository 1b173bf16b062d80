# A stand-in for node:24-slim, made without Docker Hub (see make-base-image.sh): Debian
# bookworm minbase with the Node.js 24 binary `npm ci` installed (the `node` devDependency),
# npm, and a `node` user with uid/gid 1000, laid out as in the official image.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
# This machine's trust store: its egress to the npm registry may go through a TLS proxy with
# its own CA, which Node's built-in list does not know.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
