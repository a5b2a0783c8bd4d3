package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// writeTable writes rows under header, in aligned columns.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell makes a value fit one table cell: "-" when empty, and control
// characters (a tab, a newline, a terminal escape in an event message)
// replaced so that they can break neither the table nor the terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// printRaw writes one JSON value (an object or an array) as indented JSON
// or as YAML, following -o.
func (e *env) printRaw(v json.RawMessage) error {
	if e.opts.output == "yaml" {
		out, err := yaml.JSONToYAML(v)
		if err != nil {
			return fmt.Errorf("format yaml: %w", err)
		}
		_, err = e.stdout.Write(out)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, v, "", "  "); err != nil {
		return fmt.Errorf("format json: %w", err)
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(e.stdout)
	return err
}

// printList writes raw objects as a JSON array or a YAML list.
func (e *env) printList(items []json.RawMessage) error {
	if items == nil {
		items = []json.RawMessage{}
	}
	raw, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return e.printRaw(raw)
}

// printValue writes v as JSON or YAML.
func (e *env) printValue(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.printRaw(raw)
}

// printValues writes a list as JSON or YAML: [] when it is empty.
func printValues[T any](e *env, list []T) error {
	if list == nil {
		list = []T{}
	}
	return e.printValue(list)
}

// printStreamed writes one item of a stream (watch) as a JSON line or a
// YAML document, and reports whether -o asked for either.
func (e *env) printStreamed(v any) (bool, error) {
	switch e.opts.output {
	case "json":
		return true, json.NewEncoder(e.stdout).Encode(v)
	case "yaml":
		out, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintf(e.stdout, "---\n%s", out)
		return true, err
	}
	return false, nil
}

// timeCell shows t in UTC to the second; "" (shown "-") if unset.
func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// sizeCell shows a byte count with a binary unit: 512B, 1.5GiB.
func sizeCell(n uint64) string {
	if n == 0 {
		return ""
	}
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + "B"
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + string(units[i]) + "iB"
}

// short cuts s to n characters.
func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func version(v uint64) string { return strconv.FormatUint(v, 10) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
