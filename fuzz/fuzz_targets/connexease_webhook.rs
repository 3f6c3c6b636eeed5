//! A Connexease webhook body through its parser and the sign check.
#![no_main]

use flowhost::channels::connexease;
use flowhost::flow::model::ConnexeaseSign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Some((channel, hook)) = connexease::parse(body) {
        let header = String::from_utf8_lossy(&body[..body.len().min(64)]);
        for mode in [ConnexeaseSign::HmacOfChannel, ConnexeaseSign::RawSecret] {
            let _ = connexease::verify_sign(mode, "secret", &channel, &header);
        }
        if let connexease::Hook::Message(message) = hook {
            // Media kinds are read as `image`, never `image/png`.
            for (kind, url) in &message.attachments {
                assert!(!kind.contains('/'), "{kind} {url}");
            }
        }
    }
});
