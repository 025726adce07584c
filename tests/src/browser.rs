//! A real headless Chromium (Debian's `chromium`), driven over WebDriver by
//! `chromedriver` and the `fantoccini` client, for the console's end-to-end
//! tests. It records every request its pages make (Chromium's performance
//! log: `Network.requestWillBeSent` and `Network.webSocketCreated`), so a
//! test can fail on any request to another origin, and saves screenshots
//! under `target/console-screenshots/<test>/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a page may take to show what a test waits for.
pub const SHOWS_WITHIN: Duration = Duration::from_secs(30);

/// The browser and its driver; both end when it is dropped.
pub struct Browser {
    client: Client,
    driver: tokio::process::Child,
    shots: PathBuf,
    requested: Mutex<Vec<String>>,
}

/// `POST /session/{id}/se/log`: Chromium's log of one type, emptied as it
/// is read.
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Where screenshots go: `<target>/console-screenshots/<test>`.
fn screenshot_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("console-screenshots").join(test)
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium at 1280x800; `test`
    /// names the folder its screenshots go to.
    ///
    /// # Panics
    /// When either is not installed (`apt-get install chromium
    /// chromium-driver`) or does not start.
    pub async fn start(test: &str) -> Self {
        crate::init_logging();
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver (apt-get install chromium chromium-driver)");
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        crate::wait_until("chromedriver to answer", SHOWS_WITHIN, || {
            let status = http.get(format!("{webdriver}/status")).send();
            async move { status.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
            ] }),
        );
        capabilities.insert(
            "goog:loggingPrefs".to_owned(),
            json!({ "performance": "ALL", "browser": "ALL" }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a Chromium session");
        let shots = screenshot_dir(test);
        // Only this run's pictures.
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("create the screenshot folder");
        Self {
            client,
            driver,
            shots,
            requested: Mutex::default(),
        }
    }

    /// The WebDriver client, for what these helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("open the page");
    }

    /// Runs `script` (a function body, `arguments` are `args`) in the page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .expect("run a script in the page")
    }

    /// Polls `script` (a function body returning a value) until it returns
    /// something truthy, for up to [`SHOWS_WITHIN`]; returns that value.
    ///
    /// # Panics
    /// When it does not, with `what` and the page's text.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + SHOWS_WITHIN;
        loop {
            let value = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .client
                    .execute("return document.body.innerText", vec![])
                    .await
                    .unwrap_or_default();
                self.screenshot("timed-out").await;
                panic!(
                    "timed out after {SHOWS_WITHIN:?} waiting for {what}; the page shows:\n{text}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` selects, once it is there (a page that
    /// redraws may replace it between finding and clicking: that is tried
    /// again, up to [`SHOWS_WITHIN`]).
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + SHOWS_WITHIN;
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(err) => Err(err),
            };
            match clicked {
                Ok(()) => return,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    panic!("could not click {css}: {err}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Types `text` into the field `css` selects, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no field {css}: {err}"));
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    /// Saves a screenshot of the window as `<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        match self.client.screenshot().await {
            Ok(png) => {
                let path = self.shots.join(format!("{name}.png"));
                std::fs::write(&path, png).expect("write the screenshot");
            }
            Err(err) => tracing::warn!(%err, "no screenshot"),
        }
    }

    /// Resizes the window (e.g. 390x844 for a phone).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Every URL the pages requested so far (documents, scripts, styles,
    /// fetches, WebSockets), in order.
    pub async fn requested(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(ReadLog("performance"))
            .await
            .expect("read Chromium's performance log");
        let mut requested = self.requested.lock().expect("requests lock");
        for entry in log.as_array().into_iter().flatten() {
            let Some(message) = entry["message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
            else {
                continue;
            };
            let message = &message["message"];
            let url = match message["method"].as_str() {
                Some("Network.requestWillBeSent") => message["params"]["request"]["url"].as_str(),
                Some("Network.webSocketCreated") => message["params"]["url"].as_str(),
                _ => None,
            };
            requested.extend(url.map(str::to_owned));
        }
        requested.clone()
    }

    /// Checks that every request so far went to `origin` (`http://host:port`,
    /// or its `ws://` twin), and that there were some.
    ///
    /// # Panics
    /// On any request elsewhere.
    pub async fn assert_only_requested(&self, origin: &str) {
        let ws = origin.replacen("http://", "ws://", 1);
        let requested = self.requested().await;
        assert!(
            !requested.is_empty(),
            "the performance log recorded no request"
        );
        let foreign: Vec<&String> = requested
            .iter()
            .filter(|url| {
                ![origin, &ws].iter().any(|own| {
                    url.strip_prefix(own)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
            })
            .collect();
        assert!(
            foreign.is_empty(),
            "requests to another origin: {foreign:?}"
        );
    }

    /// Messages the pages logged to the console at level SEVERE (uncaught
    /// errors, refused scripts, CSP violations).
    pub async fn severe_messages(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(ReadLog("browser"))
            .await
            .expect("read Chromium's browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter_map(|entry| entry["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
