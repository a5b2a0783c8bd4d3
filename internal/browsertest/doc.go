// Package browsertest drives Debian's chromium, headless, for the
// browser tests of the appliance's console and central's portal,
// through chromedp (pinned, v0.23: actions return their values,
// selectors are typed).
//
// Start launches one browser per test with a fresh profile in the
// test's temporary directory and stops it when the test ends. Three
// choices make it fit Outpost's rule that no request leaves the
// appliance, and let a test prove it:
//
//   - Reaching no host but the test's. The browser sends everything
//     through a proxy that does not exist (a loopback port nothing
//     listens on) except the hosts the test allows (Allow), which the
//     proxy bypass list names with their ports; "<-loopback>" takes
//     away Chromium's implicit bypass of loopback, so even another port
//     on 127.0.0.1 is unreachable. The browser resolves no name itself
//     for a proxied request, so no DNS query leaves either. Background
//     networking (updates, safe browsing, metrics) is off.
//   - Recording every request. A listener added before the tab's first
//     command sees every request the page makes (network events: the
//     document, scripts, fetches, websockets), allowed or not, with the
//     error of those that failed, so a test asserts on what the page
//     tried, not only on what arrived (Browser.Requests, Browser.Foreign).
//   - Trusting a test CA. Chromium on Linux trusts the certificates of
//     the NSS database in $HOME/.pki/nssdb; Start gives the browser a
//     home of its own and adds the CA there with certutil (Debian's
//     libnss3-tools). That trusts an ECDSA P-256 CA as a real root, for
//     any certificate it issues; the SPKI pin flag
//     (--ignore-certificate-errors-spki-list) only covers certificates
//     the server sends, which would tie a test to one leaf. Chromium
//     refuses Ed25519 certificates, so a test CA is ECDSA.
//
// A test without chromium (or certutil) fails when CI is set and is
// skipped elsewhere (as lab.Require has it); scripts/install-deps.sh
// installs both.
// When a test fails, Start's cleanup saves a screenshot of the page in
// the test's artifact directory.
//
// Helpers address elements by their data-test attribute (Fill, Click,
// TextOf), the hook the console's pages give the tests, and wait on
// conditions in the page (WaitText), never on durations.
package browsertest
