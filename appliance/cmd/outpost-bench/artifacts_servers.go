package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// The two servers of artifacts.serve, each serving the artifact
// directory at <base>/artifacts/ on a loopback port, stopped when the
// runner's cleanups run.

// serveServer is one contender, running.
type serveServer struct {
	name   string
	base   string          // its URL, without a trailing slash
	exited <-chan struct{} // closed when the process has exited
	log    string          // where it logs errors
	pid    int             // its process (nginx's master)
}

// startServeApplianced starts a single-node applianced whose boot HTTP
// service serves artifacts.
func startServeApplianced(t lab.T, bin, artifacts string) serveServer {
	boot := freeLoopback(t)
	_, p := startApplianceProc(t, bin, "-boot-addr", boot, "-artifact-dir", artifacts)
	return serveServer{name: "applianced", base: "http://" + boot, exited: p.Exited(), log: p.Stderr, pid: p.Pid()}
}

// nginxConf is a configuration of nginx's own for the benchmark, as one
// would tune it to serve big static files: every core, sendfile, headers
// corked with the first bytes of the file, no access log. Everything it
// writes stays in its directory. %[1]s is that directory, %[2]s the
// listen address, %[3]s the artifact directory.
const nginxConf = `user root;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
	worker_connections 4096;
}
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	default_type application/octet-stream;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		location /artifacts/ {
			alias %[3]s/;
		}
	}
}
`

// startServeNginx starts nginx by hand (not the packaged service), in the
// foreground with nginxConf.
func startServeNginx(t lab.T, bin, artifacts string) serveServer {
	dir := filepath.Join(t.TempDir(), "nginx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, addr, artifacts), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: its log before it reads the configuration, also ours.
	log := filepath.Join(dir, "error.log")
	p := lab.StartProcess(t, lab.ProcessConfig{Name: "nginx", Args: []string{bin,
		"-p", dir, "-c", conf, "-e", log, "-g", "daemon off;"}})
	return serveServer{name: "nginx", base: "http://" + addr, exited: p.Exited(), log: log, pid: p.Pid()}
}
