# Stand-in for nginx:1.27-alpine: Debian bookworm's nginx with the official image's layout
# (/etc/nginx/nginx.conf, logs to the container's stdout/stderr) and its default command
# `nginx -g 'daemon off;'`. Built by test/deploy/standins.ts.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /docker-entrypoint.sh
EXPOSE 80
# The official image stops nginx gracefully with SIGQUIT.
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
