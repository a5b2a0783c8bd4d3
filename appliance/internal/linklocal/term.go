package linklocal

import (
	"context"
	"errors"
	"net"
	"strconv"
)

// term is one holding of the address: from taking it to giving it up.
type term struct {
	stop context.CancelFunc // ends Serve
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
	ctx, stop := context.WithCancel(context.Background())
	t := &term{stop: stop, done: make(chan struct{}), announce: announcements - 1}
	go func() {
		defer close(t.done)
		if err := h.cfg.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
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
	t.stop()
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
