# Image of one fleet backend replica: `fleet serve` on port 8080.
# Node 20 on Debian 12 (bookworm) because the uWebSockets.js build in package.json ships native binaries
# for the Node 20 ABI only and needs glibc 2.27 or newer (bookworm has 2.36).

FROM node:20.20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
# Every folder listed in tsconfig.build.json "include"; test/dockerfile.test.ts keeps the two lists in step.
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY handlers ./handlers
COPY runtime ./runtime
COPY storage ./storage
COPY protocol ./protocol
COPY security ./security
COPY simulator ./simulator
COPY cli ./cli
COPY local ./local
RUN npm run build

FROM node:20.20-bookworm-slim AS runtime
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
# dist/ contains the compiled JavaScript and the Lua scripts that storage/scripts.js reads at run time.
COPY --from=build /app/dist ./dist
# The node user (uid 1000) comes with the base image. The files stay owned by root, so the process
# cannot change its own code.
USER node
# Devices and probes on 8080; operator API, dashboard and /metrics on 8081.
EXPOSE 8080 8081
# No HEALTHCHECK: Kubernetes ignores it and probes GET /healthz and GET /readyz instead.
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
