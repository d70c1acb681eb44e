// Package previewtest holds the conformance suites of Glimpse's provider
// interfaces, one per interface. A provider's test is a few lines that build
// a harness around a real backend and call the suite, for example:
//
//	func TestConformance(t *testing.T) {
//		previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
//			New: func(t *testing.T) preview.AssetStore { return newStore(t) },
//		})
//	}
//
// The suites check the contracts written in package preview: idempotent
// mutations, NotFound on missing things and success when deleting them,
// label selection, cancellation, and concurrency safety. A plugin adapter
// runs the same suites over its wire protocol.
package previewtest
