package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The load of artifacts.serve: machines downloading the image whole.

// serveRoundLimit bounds one round of downloads.
const serveRoundLimit = 10 * time.Minute

// serveWant is what every download must bring.
type serveWant struct {
	size   int64
	sha256 []byte
}

// imageURL is where srv serves the image.
func (srv serveServer) imageURL() string { return srv.base + "/artifacts/" + serveImage }

// waitServed downloads the image once from srv, checking it, retrying
// for up to a minute while srv starts.
func waitServed(ctx context.Context, srv serveServer, want serveWant) error {
	c := serveClient()
	defer c.CloseIdleConnections()
	err := pollEvery(ctx, 50*time.Millisecond, time.Minute, func() error {
		select {
		case <-srv.exited:
			return fmt.Errorf("%s exited:\n%s", srv.name, lastLines(srv.log, 20))
		default:
		}
		return fetchImage(ctx, c, srv.imageURL(), want, sha256.New(), make([]byte, 256<<10))
	})
	if err != nil {
		return fmt.Errorf("%s does not serve the image: %w", srv.name, err)
	}
	return nil
}

// fetchRound has n clients download the image from srv at once, each on
// a connection of its own, and returns the MiB/s of the round: all the
// bytes over its wall clock. Every client checks the byte count; the
// first also the sha256.
func fetchRound(ctx context.Context, srv serveServer, want serveWant, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, serveRoundLimit)
	defer cancel()
	c := serveClient()
	defer c.CloseIdleConnections()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			var h hash.Hash
			if i == 0 {
				h = sha256.New()
			}
			errs[i] = fetchImage(ctx, c, srv.imageURL(), want, h, make([]byte, 256<<10))
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := firstOf(errs); err != nil {
		return 0, err
	}
	return float64(n) * float64(want.size) / (1 << 20) / secs, nil
}

// firstOf is the first of errs that is not nil, saying how many failed.
func firstOf(errs []error) error {
	failed := slices.DeleteFunc(slices.Clone(errs), func(err error) bool { return err == nil })
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d downloads failed, the first: %w", len(failed), len(errs), failed[0])
}

// serveClient is a client with no connection reuse: every request is a
// machine of its own.
func serveClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:              nil,
		DisableKeepAlives:  true,
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
	}}
}

// fetchImage downloads url whole through buf, checking its size against
// want's and, when h is not nil, its sha256.
func fetchImage(ctx context.Context, c *http.Client, url string, want serveWant, h hash.Hash, buf []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var got int64
	for {
		n, err := resp.Body.Read(buf)
		got += int64(n)
		if h != nil {
			h.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("GET %s: after %d bytes: %w", url, got, err)
		}
	}
	if got != want.size {
		return fmt.Errorf("GET %s: %d bytes, want %d", url, got, want.size)
	}
	if h != nil && !bytes.Equal(h.Sum(nil), want.sha256) {
		return fmt.Errorf("GET %s: sha256 %x, want %x", url, h.Sum(nil), want.sha256)
	}
	return nil
}
