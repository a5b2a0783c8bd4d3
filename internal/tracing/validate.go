package tracing

import (
	"fmt"
	"unicode/utf8"
)

// Limits of a span received from another program (an agent's, a
// site's): what a receiver refuses rather than keeps.
const (
	MaxNameLen     = 200
	MaxAttrs       = 64
	MaxAttrLen     = 1024
	MaxEvents      = 512
	MaxSpansPerMsg = 4096
)

// Validate checks a span received from another program, naming what is
// wrong: its ids, name, times and the size of what it carries.
func (s *Span) Validate() error {
	if _, err := indexKey(s.TraceID, s.SpanID); err != nil {
		return fmt.Errorf("span %q: %w", s.Name, err)
	}
	if s.Parent != "" {
		if _, err := indexKey(s.TraceID, s.Parent); err != nil {
			return fmt.Errorf("span %q: parent: %w", s.Name, err)
		}
	}
	switch {
	case s.Name == "" || len(s.Name) > MaxNameLen || !utf8.ValidString(s.Name):
		return fmt.Errorf("span %s: name must be 1 to %d bytes of UTF-8", s.SpanID, MaxNameLen)
	case s.Service == "" || len(s.Service) > MaxNameLen:
		return fmt.Errorf("span %s (%s): service must be 1 to %d bytes", s.SpanID, s.Name, MaxNameLen)
	case s.Start.IsZero() || s.End.Before(s.Start):
		return fmt.Errorf("span %s (%s): ends (%s) before it starts (%s)", s.SpanID, s.Name, s.End, s.Start)
	case len(s.Attrs) > MaxAttrs:
		return fmt.Errorf("span %s (%s): %d attributes, more than %d", s.SpanID, s.Name, len(s.Attrs), MaxAttrs)
	case len(s.Events) > MaxEvents:
		return fmt.Errorf("span %s (%s): %d events, more than %d", s.SpanID, s.Name, len(s.Events), MaxEvents)
	}
	if err := validAttrs(s.Attrs); err != nil {
		return fmt.Errorf("span %s (%s): %w", s.SpanID, s.Name, err)
	}
	for i, e := range s.Events {
		if len(e.Name) > MaxNameLen || len(e.Attrs) > MaxAttrs {
			return fmt.Errorf("span %s (%s): event %d is too large", s.SpanID, s.Name, i)
		}
		if err := validAttrs(e.Attrs); err != nil {
			return fmt.Errorf("span %s (%s): event %d: %w", s.SpanID, s.Name, i, err)
		}
	}
	return nil
}

func validAttrs(m map[string]string) error {
	for k, v := range m {
		if len(k) > MaxNameLen || len(v) > MaxAttrLen {
			return fmt.Errorf("attribute %.40q is longer than %d bytes", k, MaxAttrLen)
		}
	}
	return nil
}
