//! SAS tokens: `createRelayToken`'s and ours, each accepted or refused by the other side.

use super::*;

/// Tokens from `createRelayToken` work on our relay (listen and connect) and equal ours for
/// the same `sr` and `se`; ours verify in Node; wrong keys are refused with 401 both ways.
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn create_relay_token_and_our_sas_tokens_interoperate() {
    let Some(modules) = node_modules("create_relay_token_and_our_sas_tokens_interoperate").await
    else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |_| {}).await;
        let (target, _received) = xor_target().await;
        let _listener = Listener::connected(relay.listener_config(target)).await;
        relay.stats().wait_for_listeners(HC, 1).await;
        let resource = relay.resource();

        /// `createRelayToken` from hyco-https, after checking hyco-ws' is the same.
        async fn node_token(relay: &Interop, rule: &str, key: &str) -> String {
            let mut node = relay.node(
                "sas.js",
                &["token", &relay.resource(), rule, key, "3600"],
                None,
            );
            let https = node.expect("HTTPS ").await["HTTPS ".len()..].to_owned();
            let ws = node.expect("WS ").await["WS ".len()..].to_owned();
            let (a, b) = (
                SasToken::parse(&https).expect("parse"),
                SasToken::parse(&ws).expect("parse"),
            );
            // The same code in both packages; only a second boundary may separate them.
            if a.expiry() == b.expiry() {
                assert_eq!(https, ws);
            }
            https
        }
        async fn node_verifies(relay: &Interop, token: &str, key: &str) -> String {
            let mut node = relay.node("sas.js", &["verify", token, key], None);
            node.line().await.expect("verdict")
        }

        for (rule, key) in [("listen", LISTEN_KEY), ("send", SEND_KEY)] {
            let theirs = node_token(&relay, rule, key).await;
            // The hand-built URI keeps the relay's port in sr.
            assert!(
                theirs.starts_with(&format!(
                    "SharedAccessSignature sr=http%3A%2F%2F127.0.0.1%3A{}%2F{HC}&sig=",
                    relay.port()
                )),
                "{theirs}"
            );
            let parsed = SasToken::parse(&theirs).expect("parse theirs");
            parsed
                .verify(&Secret::new(key), unix_now())
                .expect("their token verifies with our code");
            assert_eq!(parsed.key_name(), rule);
            assert!(parsed.audience().covers_path(HC));
            // Ours for the same sr and se is the same string.
            let ours =
                SasToken::sign(&resource, rule, &Secret::new(key), parsed.expiry()).expect("sign");
            assert_eq!(ours.expose(), theirs);
            assert_eq!(node_verifies(&relay, ours.expose(), key).await, "VALID");

            // Wrong key: our verifier and theirs refuse.
            let theirs_wrong = node_token(&relay, rule, WRONG_KEY).await;
            let parsed_wrong = SasToken::parse(&theirs_wrong).expect("parse");
            assert!(matches!(
                parsed_wrong.verify(&Secret::new(key), unix_now()),
                Err(SasError::BadSignature { .. })
            ));
            let ours_wrong = SasToken::sign(
                &resource,
                rule,
                &Secret::new(WRONG_KEY),
                parsed_wrong.expiry(),
            )
            .expect("sign");
            assert_eq!(ours_wrong.expose(), theirs_wrong);
            assert_eq!(
                node_verifies(&relay, ours_wrong.expose(), key).await,
                "INVALID signature"
            );
        }

        // Our relay accepts their tokens for listen and connect…
        let listen = node_token(&relay, "listen", LISTEN_KEY).await;
        let (control, _) = relay
            .token_access(&listen)
            .listen("interop-listen")
            .await
            .expect("listen with a createRelayToken token");
        relay.stats().wait_for_listeners(HC, 2).await;
        drop(control);
        // (Back to our relay-listener alone, so the sender below is accepted by it.)
        relay.stats().wait_for_listeners(HC, 1).await;
        let send = node_token(&relay, "send", SEND_KEY).await;
        let sender = relay
            .token_access(&send)
            .connect("interop-send", &[], &[])
            .await
            .expect("connect with a createRelayToken token");
        drop(sender);

        // …and refuses wrong-key tokens, theirs and ours, with 401.
        for rule in ["listen", "send"] {
            let theirs = node_token(&relay, rule, WRONG_KEY).await;
            let ours = SasToken::sign(&resource, rule, &Secret::new(WRONG_KEY), unix_now() + 3600)
                .expect("sign");
            for token in [theirs.as_str(), ours.expose()] {
                let access = relay.token_access(token);
                let status = if rule == "listen" {
                    refusal(access.listen("wrong").await)
                } else {
                    refusal(access.connect("wrong", &[], &[]).await)
                };
                assert_eq!(status, 401, "{rule} with a wrong-key token");
            }
        }
    })
    .await;
}
