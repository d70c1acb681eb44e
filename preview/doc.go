// Package preview is the core of Glimpse: the types that describe a preview
// environment (Spec, Target, Preview, Route, Labels), the small interfaces
// that providers implement (Builder, Registry, FunctionRuntime, AssetStore,
// Router, DNS, IdlePolicy), the error codes every provider classifies into,
// the naming rules that turn (app, PR, commit) into function names, hosts and
// image tags, the provider registry that opens providers by URL, and the
// Pipeline that composes them into Up, Down and List.
//
// The package imports only the standard library. Logic every provider would
// otherwise repeat (walking asset trees, content types, hashing, labels,
// naming, validation) lives here once.
package preview
