package linklocal

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// term is one holding of the address: from taking it to giving it up.
type term struct {
	srv  *http.Server
	done chan struct{}
	// announce is how many more renewals announce the address.
	announce int
}

// take adds the address to every interface, serves it and announces it.
// On a failure it logs what failed, gives back what it took and returns
// nil: the next renewal tries again.
func (h *Holder) take() *term {
	log := h.cfg.Log
	for _, ifname := range h.cfg.Interfaces {
		if err := h.cfg.Links.Hold(ifname, h.prefix, h.cfg.Lifetime); err != nil {
			log.Error("linklocal: cannot take the metadata address", "addr", Addr, "interface", ifname, "err", err)
			h.drop()
			return nil
		}
	}
	addr := net.JoinHostPort(Addr.String(), strconv.Itoa(h.cfg.Port))
	ln, err := h.cfg.Listen("tcp4", addr)
	if err != nil {
		log.Error("linklocal: cannot serve the metadata address", "addr", addr, "err", err)
		h.drop()
		return nil
	}
	t := &term{
		srv: &http.Server{Handler: h.cfg.Handler, ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
		done:     make(chan struct{}),
		announce: announcements - 1,
	}
	go func() {
		defer close(t.done)
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("linklocal: serving the metadata address", "addr", addr, "err", err)
		}
	}()
	h.announce()
	log.Info("linklocal: took the metadata address", "addr", addr, "interfaces", h.cfg.Interfaces)
	return t
}

// renew extends the address's lifetime on every interface, and
// announces it again while t's announcements last.
func (h *Holder) renew(t *term) {
	for _, ifname := range h.cfg.Interfaces {
		if err := h.cfg.Links.Hold(ifname, h.prefix, h.cfg.Lifetime); err != nil {
			h.cfg.Log.Error("linklocal: cannot renew the metadata address", "addr", Addr, "interface", ifname, "err", err)
		}
	}
	if t.announce > 0 {
		t.announce--
		h.announce()
	}
}

func (h *Holder) announce() {
	for _, ifname := range h.cfg.Interfaces {
		if err := h.cfg.Links.Announce(ifname, Addr); err != nil {
			h.cfg.Log.Warn("linklocal: cannot announce the metadata address", "addr", Addr, "interface", ifname, "err", err)
		}
	}
}

// release stops serving the address and removes it.
func (h *Holder) release(t *term) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := t.srv.Shutdown(ctx); err != nil {
		t.srv.Close()
	}
	<-t.done
	h.drop()
	h.cfg.Log.Info("linklocal: gave up the metadata address", "addr", Addr)
}

// drop removes the address from every interface.
func (h *Holder) drop() {
	for _, ifname := range h.cfg.Interfaces {
		if err := h.cfg.Links.Drop(ifname, h.prefix); err != nil {
			h.cfg.Log.Error("linklocal: cannot remove the metadata address", "addr", Addr, "interface", ifname, "err", err)
		}
	}
}
