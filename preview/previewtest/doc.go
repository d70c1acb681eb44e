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
// label selection and cancellation in every suite; the ordering contracts
// (the Router's compare-and-swap with many writers per version, tombstones;
// the runtime refusing an older generation); and concurrent use where the
// contract promises it: concurrent Publish of one prefix (assets),
// concurrent Apply of different functions (runtime), concurrent
// compare-and-swap (router),
// concurrent Ensure/Remove (DNS). A plugin adapter runs the same suites
// over its wire protocol.
//
// The package also holds in-memory reference providers (MemRouter,
// MemRuntime, MemAssets, MemRegistry, MemBuilder, MemDNS), the smallest
// correct implementation of each contract; they pass the suites and the
// Pipeline's unit tests run on them.
package previewtest
