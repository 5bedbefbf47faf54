//! Replies and the page around a message, through the client against a real server.

mod support;

use causerie_client::ClientEvent;
use support::{Recorded, TestServer};

#[tokio::test]
async fn a_reply_arrives_with_its_quote_and_the_original_can_be_shown_in_its_context() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let sent: Vec<_> = (1..=40)
        .map(|i| ada.client.send("general", &format!("line {i}")))
        .collect();
    ada.until_confirmed(&sent).await;
    let original = ada.messages()[4].clone();

    let answer = bob.client.reply("general", original.seq, "about line 5");
    bob.until_confirmed(std::slice::from_ref(&answer)).await;
    ada.until("the reply", |log| {
        support::messages(log)
            .iter()
            .any(|m| m.text == "about line 5")
    })
    .await;
    let reply = ada
        .messages()
        .into_iter()
        .find(|m| m.text == "about line 5")
        .cloned()
        .expect("the reply");
    let quote = reply.reply_to.expect("a quote");
    assert_eq!(
        (
            quote.seq,
            quote.author.name.as_str(),
            quote.excerpt.as_str()
        ),
        (original.seq, "Ada", "line 5")
    );

    // The original in its context, without touching the timeline.
    let delivered = ada.messages().len();
    ada.client.history_around("general", original.seq);
    ada.until("the page around it", |log| {
        log.iter().any(|e| matches!(e, ClientEvent::Around { .. }))
    })
    .await;
    let page = ada
        .log
        .iter()
        .find_map(|e| match e {
            ClientEvent::Around { around, page } => Some((*around, page.clone())),
            _ => None,
        })
        .expect("a page");
    assert_eq!(page.0, original.seq);
    assert!(page.1.messages.iter().any(|m| m.seq == original.seq));
    assert_eq!(ada.messages().len(), delivered, "nothing delivered twice");

    // A reply to nothing fails with its code, once.
    let lost = bob.client.reply("general", 10_000, "to nothing");
    bob.until("the refusal", |log| {
        log.iter().any(|e| {
            matches!(e, ClientEvent::Failed { local_id, error, .. }
                if *local_id == lost && error.code == causerie_protocol::ErrorCode::NotFound)
        })
    })
    .await;
}
