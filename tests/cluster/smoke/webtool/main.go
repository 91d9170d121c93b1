// Command webtool is the local cluster's smoke-test program. It is built
// static into a FROM-scratch image (no shell), so every check the smoke test
// makes from inside a pod is one of its subcommands, run with `kubectl exec`:
//
//	webtool serve [-addr :8080] [-data /data]   HTTP server (GET/PUT /files/NAME, /healthz, /hostname)
//	webtool write FILE TEXT                     write TEXT to FILE
//	webtool cat FILE                            print FILE
//	webtool lookup NAME                         resolve NAME with the pod's resolv.conf (search path applies)
//	webtool get URL                             HTTP GET, print the body, fail on non-2xx
//	webtool apiget PATH                         GET PATH from the API server with the pod's service account
//	webtool hostname                            print the hostname
//	webtool sleep                               block forever (a client pod)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: webtool serve|write|cat|lookup|get|hostname|sleep ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "write":
		need(args, 2)
		check(os.MkdirAll(filepath.Dir(args[0]), 0o755))
		check(os.WriteFile(args[0], []byte(args[1]), 0o644))
	case "cat":
		need(args, 1)
		b, err := os.ReadFile(args[0])
		check(err)
		os.Stdout.Write(b)
	case "lookup":
		need(args, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
		check(err)
		fmt.Println(strings.Join(addrs, "\n"))
	case "get":
		need(args, 1)
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(args[0])
		check(err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		os.Stdout.Write(b)
		if resp.StatusCode/100 != 2 {
			fail("GET %s: %s", args[0], resp.Status)
		}
	case "apiget":
		need(args, 1)
		apiGet(args[0])
	case "hostname":
		h, err := os.Hostname()
		check(err)
		fmt.Println(h)
	case "sleep":
		waitSignal()
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}

func serve(args []string) {
	addr, data := ":8080", "/data"
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "-addr", "--addr":
			addr = args[i+1]
		case "-data", "--data":
			data = args[i+1]
		default:
			fail("serve: unknown flag %s", args[i])
		}
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, host+"\n") })
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		if name == "." || name == "/" || name == "files" {
			http.Error(w, "missing file name", http.StatusBadRequest)
			return
		}
		p := filepath.Join(data, name)
		switch r.Method {
		case http.MethodGet:
			b, err := os.ReadFile(p)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Write(b)
		case http.MethodPut, http.MethodPost:
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "stored\n")
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: addr, Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		waitSignal()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Printf("webtool serving on %s (hostname %s, data %s)", addr, host, data)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fail("serve: %v", err)
	}
}

// apiGet does what an in-cluster client (like the operator) does: service-account token and
// CA from the projected volume, API server at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
func apiGet(path string) {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err := os.ReadFile(sa + "token")
	check(err)
	ca, err := os.ReadFile(sa + "ca.crt")
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		fail("apiget: no certificates in %sca.crt", sa)
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		fail("apiget: KUBERNETES_SERVICE_HOST/PORT not set")
	}
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(host, port)+path, nil)
	check(err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := c.Do(req)
	check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.Stdout.Write(b)
	if resp.StatusCode/100 != 2 {
		fail("apiget %s: %s", path, resp.Status)
	}
}

func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}

func need(args []string, n int) {
	if len(args) < n {
		fail("%s: need %d argument(s)", os.Args[1], n)
	}
}

func check(err error) {
	if err != nil {
		fail("%s: %v", os.Args[1], err)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "webtool: "+format+"\n", a...)
	os.Exit(1)
}
