//! Search through the client against a real server: the user's rooms, newest first, paged.

mod support;

use causerie_client::ClientEvent;
use support::{Recorded, TestServer};

fn found(log: &[ClientEvent]) -> Option<(Vec<String>, Option<String>)> {
    log.iter().rev().find_map(|event| match event {
        ClientEvent::Search { results, next, .. } => Some((
            results.iter().map(|m| m.text.clone()).collect(),
            next.clone(),
        )),
        _ => None,
    })
}

#[tokio::test]
async fn a_search_finds_the_users_messages_newest_first_a_page_at_a_time() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let sent: Vec<_> = ["first kiwi", "no fruit here", "second kiwi"]
        .iter()
        .map(|text| ada.client.send("general", text))
        .collect();
    ada.until_confirmed(&sent).await;

    ada.client.search("KIWI", None);
    ada.until("results", |log| found(log).is_some()).await;
    let (texts, next) = found(&ada.log).expect("results");
    assert_eq!(texts, ["second kiwi", "first kiwi"]);
    assert_eq!(next, None);
}
