# Chromium, for the daemon dashboard's tests in a real headless browser
# (daemon/dashboard drives it with chromedp). Debian's package, installed
# once (~30 s); each test starts its own browser process and stops it.
if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium"
  apt_install chromium
fi
export GLIMPSE_CHROMIUM_BIN=/usr/bin/chromium
