package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// QMP is a client of a QEMU's machine protocol (QMP) socket: one command
// at a time, each answered before the next is sent. Events QEMU sends in
// between are skipped.
type QMP struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialQMP connects to the QMP socket at path (a Unix socket QEMU serves
// with -qmp unix:PATH,server=on,wait=off), reads its greeting and leaves
// capabilities negotiation, so that it takes commands. It tries again
// until ctx ends while QEMU has not made the socket yet.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			q := &QMP{conn: conn, r: bufio.NewReader(conn)}
			if err := q.handshake(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: QMP %s: %w (%v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (q *QMP) handshake(ctx context.Context) error {
	q.deadline(ctx)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("lab: QMP greeting: %w", err)
	}
	if err := json.Unmarshal(line, &greeting); err != nil || greeting.QMP == nil {
		return fmt.Errorf("lab: QMP greeting: %q", line)
	}
	_, err = q.Execute(ctx, "qmp_capabilities", nil)
	return err
}

func (q *QMP) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	q.conn.SetDeadline(dl)
}

// Execute runs one command with its arguments (nil for none) and returns
// its "return" value, or QEMU's error.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.deadline(ctx)
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	if err := json.NewEncoder(q.conn).Encode(req); err != nil {
		return nil, fmt.Errorf("lab: QMP %s: %w", command, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("lab: QMP %s: %w", command, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("lab: QMP %s: %q: %w", command, line, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return nil, fmt.Errorf("lab: QMP %s: %s: %s", command, resp.Error.Class, resp.Error.Desc)
		case resp.Return != nil:
			return resp.Return, nil
		}
		return nil, errors.New("lab: QMP " + command + ": an answer with neither return nor error")
	}
}

// Status is the VM's run state (query-status): "running", "paused",
// "shutdown", ...
func (q *QMP) Status(ctx context.Context) (string, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct{ Status string }
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("lab: QMP query-status: %w", err)
	}
	return st.Status, nil
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
