//! The console's static files, embedded in the binary at build time from
//! `crates/console/assets/`: nothing is read from disk or fetched at run
//! time. Only the files of [`ASSETS`] are served, by exact name: a request
//! for anything else (`..`, an encoded slash, another file) is a 404.

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The name in `/console/assets/{name}`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The page (`GET /console`).
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/index.html"),
};

/// Every file under `/console/assets/`.
pub const ASSETS: [Asset; 4] = [
    INDEX,
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/console.css"),
    },
    Asset {
        name: "jssip.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/jssip.min.js"),
    },
];

/// The embedded file called exactly `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_are_found() {
        assert_eq!(
            find("console.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        assert!(find("index.html").is_some());
        for bad in [
            "",
            "..",
            "../Cargo.toml",
            "console.js/",
            "CONSOLE.JS",
            "%2e%2e",
            "src/lib.rs",
        ] {
            assert!(find(bad).is_none(), "{bad}");
        }
    }
}
