// Package ownership encodes Glimpse's ownership labels compactly for DNS
// providers that can attach only a little text to a record: a TXT record's
// strings (dns/rfc2136dns) or a record comment (dns/cloudflaredns).
//
// The form is versioned so that a later change still recognises records
// written by this one (external-dns #3757 orphaned records when its marker
// changed format). Version 1 is a list of tokens:
//
//	glimpse/1 owner=conformance app=hello pr=42 commit=3f2c1ab
//
// The first token names the format and its version. Each further token is
// key=value with the "glimpse.dev/" prefix left off the key, key and value
// query-escaped (so neither holds a space or '='). The labels
// glimpse.dev/managed-by=glimpse and glimpse.dev/labels-version are implied
// by the header, not written, and Decode puts them back.
package ownership

import (
	"net/url"
	"sort"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// Header is the first token of a version 1 encoding.
const Header = "glimpse/1"

// Tokens returns the version 1 tokens of labels: Header, then one key=value
// per label, sorted by key, without the implied labels.
func Tokens(labels preview.Labels) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k == preview.LabelManagedBy || k == preview.LabelVersion {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys)+1)
	out = append(out, Header)
	for _, k := range keys {
		short := k
		if rest, ok := strings.CutPrefix(k, preview.LabelPrefix); ok && rest != "" {
			short = rest
		}
		out = append(out, url.QueryEscape(short)+"="+url.QueryEscape(labels[k]))
	}
	return out
}

// Encode returns Tokens(labels) joined by single spaces.
func Encode(labels preview.Labels) string { return strings.Join(Tokens(labels), " ") }

// DecodeTokens reads labels back from tokens. ok is false when the tokens
// are not a Glimpse encoding of a version this package knows; such a record
// is not Glimpse's and must be left alone.
func DecodeTokens(tokens []string) (labels preview.Labels, ok bool) {
	if len(tokens) == 0 || tokens[0] != Header {
		return nil, false
	}
	labels = preview.Labels{
		preview.LabelManagedBy: preview.ManagedByValue,
		preview.LabelVersion:   preview.LabelsVersionValue,
	}
	for _, tok := range tokens[1:] {
		if tok == "" {
			continue
		}
		k, v, found := strings.Cut(tok, "=")
		if !found {
			return nil, false
		}
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || key == "" {
			return nil, false
		}
		if !strings.Contains(key, "/") {
			key = preview.LabelPrefix + key
		}
		labels[key] = val
	}
	return labels, true
}

// Decode reads labels back from Encode's string.
func Decode(s string) (labels preview.Labels, ok bool) {
	return DecodeTokens(strings.Split(s, " "))
}
