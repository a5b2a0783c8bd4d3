package cli

import (
	"fmt"
	"strings"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
)

// Annotations, at central: an incident or a fault recorded against the
// fleet or a site, which the portal's charts page marks over the
// provisions of its window with what it cost.

// annotationClient is central's client, or an error saying annotations
// are central's.
func (e *env) annotationClient() (*cclient.Client, error) {
	return e.centralOnlyClient("annotations are recorded at central")
}

// runAnnotate records an annotation: KIND, then its text; --start (a
// time, or a duration: that long ago; now without), --end or --for (an
// instant without either), the global --site (the fleet without).
func runAnnotate(e *env, args []string) error {
	fs := e.flagSet("annotate")
	start := fs.String("start", "", "")
	end := fs.String("end", "", "")
	lasted := fs.Duration("for", 0, "")
	pos, err := e.parse(fs, args, 1, -1)
	if err != nil {
		return err
	}
	a := cclient.NewAnnotation{Site: e.opts.site, Kind: pos[0], Text: strings.Join(pos[1:], " "), Start: time.Now()}
	if *start != "" {
		if a.Start, err = timeArg("annotate", "--start", *start); err != nil {
			return err
		}
	}
	switch {
	case *end != "" && *lasted != 0:
		return usagef("annotate: --end and --for: give one")
	case *end != "":
		a.End, err = timeArg("annotate", "--end", *end)
	case *lasted < 0:
		return usagef("annotate: --for %s: want a positive duration", *lasted)
	case *lasted > 0:
		a.End = a.Start.Add(*lasted)
	}
	if err != nil {
		return err
	}
	c, err := e.annotationClient()
	if err != nil {
		return err
	}
	got, err := c.Annotate(e.ctx, a)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(got)
	}
	fmt.Fprintf(e.stdout, "annotation %d: %s %s–%s %s\n", got.ID, got.Kind, timeCell(got.Start), timeCell(got.End), siteCell(got.Site))
	return nil
}

// siteCell names an annotation's site, or the fleet.
func siteCell(site string) string {
	if site == "" {
		return "fleet-wide"
	}
	return "site " + site
}

// runAnnotationList lists the annotations of --site (and the
// fleet-wide ones) whose window touches --since and --until.
func runAnnotationList(e *env, args []string) error {
	fs := e.flagSet("annotation list")
	var f cclient.AnnotationFilter
	fs.IntVar(&f.Limit, "limit", 0, "")
	since := fs.String("since", "", "")
	until := fs.String("until", "", "")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	f.Site = e.opts.site
	var err error
	if f.Since, err = timeArg("annotation list", "--since", *since); err != nil {
		return err
	}
	if f.Until, err = timeArg("annotation list", "--until", *until); err != nil {
		return err
	}
	c, err := e.annotationClient()
	if err != nil {
		return err
	}
	list, err := c.Annotations(e.ctx, f)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, list)
	}
	rows := make([][]string, len(list))
	for i, a := range list {
		rows[i] = []string{version(a.ID), a.Kind, a.Site, timeCell(a.Start), timeCell(a.End), a.By, a.Text}
	}
	return writeTable(e.stdout, []string{"ID", "KIND", "SITE", "START", "END", "BY", "TEXT"}, rows)
}
