package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/internal/backoff"
)

// Agent is the installer's agent of one simulated machine: it runs the
// machine's workflow over the agent API as the real agent does (package
// agent), without touching a disk. image.write downloads the image whole
// and checks its sha256 (of the file as served, as the agent does; it is
// not decompressed, which is the agent's CPU, not the appliance's); every
// other action type starts and succeeds at once. It retries what the
// real agent retries, as it does.
type Agent struct {
	// Rediscover, if set, finds the appliance again once it has not
	// answered rediscoverAfter requests in a row (a node of the site
	// died): it returns the address of the node that answers DHCP for
	// the site now, which replaces outpost.url's host (the port kept),
	// as the installer's agent does (agent.Config.Rediscover).
	Rediscover func(ctx context.Context) (string, error)
	// Damage, if set, is asked at each image download whether the link
	// damages it: then one byte of it is flipped on its way in, before
	// the agent hashes it, as a link whose damage TCP's checksum misses
	// would. The agent's check is what finds it.
	Damage func() bool

	hc    *http.Client
	base  *url.URL // outpost.url, its host as last rediscovered
	token string
	stats *Stats
	// unanswered counts the requests in a row that got no answer.
	unanswered int
	// former are the hosts the appliance was found at before.
	former map[string]bool
}

// rediscoverAfter is how many requests in a row go unanswered before the
// agent looks for the appliance again (agent.DefaultRediscoverAfter).
const rediscoverAfter = 3

// NewAgent returns the agent of an installer booted with outpost.url=base
// and outpost.token=token (an InstallScript's URL and Token), which sends
// its requests with hc and counts its retries in stats (nil: not
// counted).
func NewAgent(hc *http.Client, base, token string, stats *Stats) (*Agent, error) {
	u, err := url.Parse(base)
	if err == nil && u.Scheme != "http" {
		err = fmt.Errorf("%s=%q is not an http URL", agentproto.ParamURL, base)
	}
	if err != nil {
		return nil, err
	}
	return &Agent{hc: hc, base: u, token: token, stats: stats}, nil
}

// errRefused is a 409: the report does not fit the workflow's state any
// more, and the agent fetches the workflow again.
var errRefused = errors.New("refused (409)")

// errBadRequest is a 400: an appliance of an older release refuses a
// report of a kind it does not know.
var errBadRequest = errors.New("bad request (400)")

// The agent's polling bounds while nothing is ready (agent.DefaultPollMin
// and DefaultPollMax).
const (
	pollMin = time.Second
	pollMax = 10 * time.Second
)

// Run fetches the workflow and runs its ready actions, one at a time,
// until it is done, and returns it as it ended.
//
// An attempt running when it first fetches the workflow is an earlier
// agent's (the machine was reset during it): it reports it lost, as the
// real agent does, and the appliance retries it.
func (a *Agent) Run(ctx context.Context) (*agentproto.Workflow, error) {
	wf, err := a.fetch(ctx)
	if err == nil {
		wf, err = a.loseOrphans(ctx, wf)
	}
	for err == nil && !wf.Done() {
		next, aerr := a.act(ctx, wf)
		switch {
		case next != nil:
			wf = next
			continue
		case aerr != nil && !errors.Is(aerr, errRefused):
			return nil, aerr
		case aerr != nil:
			a.stats.count("agent: a report refused (409), fetched the workflow again")
		default: // nothing ready: wait as long as the appliance says
			a.stats.count("agent: nothing ready, waited and fetched the workflow again")
			poll := min(max(time.Duration(wf.Poll*float64(time.Second)), pollMin), pollMax)
			if !backoff.Sleep(ctx, poll) {
				return nil, ctx.Err()
			}
		}
		wf, err = a.fetch(ctx)
	}
	return wf, err
}

func (a *Agent) fetch(ctx context.Context) (*agentproto.Workflow, error) {
	var wf agentproto.Workflow
	if err := a.call(ctx, http.MethodGet, agentproto.PathWorkflow, nil, &wf); err != nil {
		return nil, err
	}
	return &wf, nil
}

// loseOrphans reports lost each attempt of wf running, and returns the
// workflow as the last report left it.
func (a *Agent) loseOrphans(ctx context.Context, wf *agentproto.Workflow) (*agentproto.Workflow, error) {
	for _, act := range wf.Actions {
		if act.Status != "running" {
			continue
		}
		rep := agentproto.Report{Action: act.Name, Attempt: act.Attempt, Kind: agentproto.ReportLost,
			Message: fmt.Sprintf("the agent restarted during attempt %d", act.Attempt)}
		var next agentproto.Workflow
		err := a.call(ctx, http.MethodPost, agentproto.PathReport, rep, &next)
		if errors.Is(err, errBadRequest) {
			// A release before lost reports: told the attempt failed, as
			// its agents did (the real agent does the same).
			a.stats.count("agent: a lost report refused as unknown (400), reported failed")
			rep.Kind = agentproto.ReportFinish
			err = a.call(ctx, http.MethodPost, agentproto.PathReport, rep, &next)
		}
		switch {
		case errors.Is(err, errRefused):
			a.stats.count("agent: a lost report refused (409)")
			return a.fetch(ctx)
		case err != nil:
			return nil, err
		}
		a.stats.count("agent: an earlier agent's attempt reported lost")
		wf = &next
	}
	return wf, nil
}

// act runs the first ready action of wf: a start report, the work, a
// finish report. It returns the workflow the finish report was answered
// with, or nil when nothing is ready.
func (a *Agent) act(ctx context.Context, wf *agentproto.Workflow) (*agentproto.Workflow, error) {
	if len(wf.Ready) == 0 {
		return nil, nil
	}
	i := slices.IndexFunc(wf.Actions, func(x agentproto.Action) bool { return x.Name == wf.Ready[0] })
	if i < 0 {
		return nil, fmt.Errorf("ready action %q is not among the workflow's actions", wf.Ready[0])
	}
	act := wf.Actions[i]
	rep := agentproto.Report{Action: act.Name, Attempt: act.Attempt + 1, Kind: agentproto.ReportStart}
	if err := a.call(ctx, http.MethodPost, agentproto.PathReport, rep, nil); err != nil {
		return nil, err
	}
	ok, msg := true, act.Type+" done (simulated)"
	if act.Type == "image.write" {
		var err error
		if ok, msg, err = a.writeImage(ctx, act, rep.Attempt); err != nil {
			return nil, err
		}
	}
	rep.Kind, rep.OK, rep.Message = agentproto.ReportFinish, ok, msg
	var next agentproto.Workflow
	if err := a.call(ctx, http.MethodPost, agentproto.PathReport, rep, &next); err != nil {
		return nil, err
	}
	return &next, nil
}

// writeImage downloads the image, starting again when a download breaks,
// and checks its sha256. A failure is the attempt's (ok false, with why);
// an error is a refused progress report or the end of ctx.
func (a *Agent) writeImage(ctx context.Context, act agentproto.Action, attempt int) (ok bool, msg string, err error) {
	u, err := a.base.Parse(act.Args["url"])
	if err != nil {
		return false, fmt.Sprintf("url %q: %v", act.Args["url"], err), nil
	}
	var sum string
	var n int64
	for redownload := 0; ; redownload++ {
		err = retry(ctx, a.stats, "GET image", func() (string, error) {
			s, m, transient, derr := a.download(ctx, a.onAppliance(u), act.Name, attempt)
			sum, n = s, m
			a.answered(ctx, m > 0 || transient == "", derr)
			return transient, derr
		})
		switch {
		case errors.Is(err, errRefused) || ctx.Err() != nil:
			return false, "", err
		case err != nil:
			return false, err.Error(), nil
		case sum != act.Args["sha256"] && redownload < redownloadsOnMismatch:
			a.stats.count("agent: the image did not hash to its sha256, downloaded it again")
			continue
		case sum != act.Args["sha256"]:
			return false, fmt.Sprintf("sha256 mismatch: downloaded %s, expected %s", sum, act.Args["sha256"]), nil
		}
		return true, fmt.Sprintf("downloaded %d bytes, sha256 verified, started over %d times (simulated: no disk written)", n, redownload), nil
	}
}

// redownloadsOnMismatch is how often one attempt downloads the image
// again after a sha256 mismatch (the agent's).
const redownloadsOnMismatch = 1

// download fetches the image once, hashing it, and reports 50 % progress
// half-way through. transient says why a failure may be retried.
func (a *Agent) download(ctx context.Context, u *url.URL, action string, attempt int) (sum string, n int64, transient string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", 0, "", err
	}
	if u.Scheme == a.base.Scheme && u.Host == a.base.Host {
		req.Header.Set("Authorization", "Bearer "+a.token) // never to another host
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", 0, transientKind(0, err), fmt.Errorf("GET %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: HTTP %d", u.Path, resp.StatusCode)
		return "", 0, transientKind(resp.StatusCode, err), err
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	half, reported := resp.ContentLength/2, false
	damage := a.Damage != nil && a.Damage()
	for {
		m, rerr := resp.Body.Read(buf)
		if damage && m > 0 {
			buf[m/2] ^= 0xff // on its way in, before it is hashed
			damage = false
			a.stats.count("link: one byte of an image download damaged")
		}
		h.Write(buf[:m])
		n += int64(m)
		if !reported && half > 0 && n >= half {
			reported = true
			p := agentproto.Report{Action: action, Attempt: attempt, Kind: agentproto.ReportProgress, Progress: 50,
				Message: fmt.Sprintf("%d of %d bytes", n, resp.ContentLength)}
			if err := a.call(ctx, http.MethodPost, agentproto.PathReport, p, nil); err != nil {
				return "", n, "", err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", n, transientKind(0, rerr), fmt.Errorf("GET %s: %w after %d bytes", u.Path, rerr, n)
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", n, "short body", fmt.Errorf("GET %s: %d of %d bytes", u.Path, n, resp.ContentLength)
	}
	return hex.EncodeToString(h.Sum(nil)), n, "", nil
}

// call sends an agent API request with the credential until it is
// answered, retrying transient failures; 200 decodes the answer into out
// (if not nil), 409 is errRefused, 400 errBadRequest, anything else is
// final.
func (a *Agent) call(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	what := "agent " + method + " " + path
	return retry(ctx, a.stats, what, func() (string, error) {
		status, answer, err := try(ctx, a.hc, method, a.base.String()+path, payload, 16<<20,
			"Authorization", "Bearer "+a.token, "Accept", "application/json")
		a.answered(ctx, status != 0, err)
		switch {
		case err != nil:
			return transientKind(0, err), err
		case status == http.StatusConflict:
			return "", fmt.Errorf("%s: %w: %s", what, errRefused, answer)
		case status == http.StatusBadRequest:
			return "", fmt.Errorf("%s: %w: %s", what, errBadRequest, answer)
		case status != http.StatusOK:
			err := fmt.Errorf("%s: HTTP %d: %s", what, status, answer)
			return transientKind(status, err), err
		case out != nil:
			if err := json.Unmarshal(answer, out); err != nil {
				return "", fmt.Errorf("%s: decode answer: %w", what, err)
			}
		}
		return "", nil
	})
}

// answered counts a request that got no answer (ok false, with err), and
// after rediscoverAfter in a row finds the appliance again (Rediscover).
// A failure to find it is counted and left to the next try.
func (a *Agent) answered(ctx context.Context, ok bool, err error) {
	if ok || err == nil || a.Rediscover == nil || ctx.Err() != nil {
		a.unanswered = 0
		return
	}
	if a.unanswered++; a.unanswered < rediscoverAfter {
		return
	}
	a.unanswered = 0
	host, rerr := a.Rediscover(ctx)
	if rerr != nil {
		a.stats.count("agent: could not find the appliance again through DHCP")
		return
	}
	if host == a.base.Hostname() {
		a.stats.count("agent: DHCP named the same appliance again")
		return
	}
	if a.former == nil {
		a.former = map[string]bool{}
	}
	a.former[a.base.Host] = true
	u := *a.base
	u.Host = net.JoinHostPort(host, a.base.Port())
	a.base = &u
	a.stats.count("agent: the appliance stopped answering; found it again through DHCP")
}

// onAppliance is u with the appliance's current host when u is on one
// it was found at before (outpost.url's, before a rediscovery).
func (a *Agent) onAppliance(u *url.URL) *url.URL {
	if !a.former[u.Host] {
		return u
	}
	v := *u
	v.Host = a.base.Host
	return &v
}
