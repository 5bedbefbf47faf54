//! Edits and deletions through the client against a real server: sent in order with messages,
//! confirmed, and caught up on after an outage, in order, once.

mod support;

use causerie_client::ClientEvent;
use causerie_protocol::{ChangeKind, ErrorCode};
use support::{Proxy, Recorded, TestServer};

#[tokio::test]
async fn a_client_away_while_a_message_is_edited_and_deleted_sees_each_change_once_in_order() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.address).await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&proxy.url(), "Bob").await;
    let typo = ada.client.send("general", "helo");
    let kept = ada.client.send("general", "keep me");
    ada.until_confirmed(&[typo.clone(), kept.clone()]).await;
    bob.until_messages("general", 2).await;
    let seq_of = |recorded: &Recorded, text: &str| {
        recorded
            .messages()
            .iter()
            .find(|m| m.text == text)
            .map(|m| m.seq)
            .expect("the message")
    };
    let (typo_seq, kept_seq) = (seq_of(&ada, "helo"), seq_of(&ada, "keep me"));

    proxy.cut();
    let edit = ada.client.edit("general", typo_seq, "hello");
    let delete = ada.client.delete("general", kept_seq);
    let after = ada.client.send("general", "after the changes");
    ada.until_confirmed(&[edit.clone(), delete.clone(), after.clone()])
        .await;
    proxy.restore();

    bob.until_messages("general", 3).await;
    bob.sync().await;
    let changes: Vec<(u64, ChangeKind, u64)> = bob
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Change { change, confirms } => {
                assert!(confirms.is_none(), "Ada's, not Bob's");
                Some((change.seq, change.kind, change.target))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (kept_seq + 1, ChangeKind::Edit, typo_seq),
            (kept_seq + 2, ChangeKind::Delete, kept_seq)
        ]
    );
    // The message after them comes after them.
    let last = bob.messages().last().map(|m| m.seq);
    assert_eq!(last, Some(kept_seq + 3));
}

#[tokio::test]
async fn a_change_reaches_a_connected_client_live() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let typo = ada.client.send("general", "helo");
    ada.until_confirmed(std::slice::from_ref(&typo)).await;
    bob.until_messages("general", 1).await;
    let seq = bob.messages()[0].seq;
    let edit = ada.client.edit("general", seq, "hello");
    ada.until_confirmed(std::slice::from_ref(&edit)).await;
    bob.until("the edit, live", |log| {
        log.iter().any(|e| {
            matches!(e, ClientEvent::Change { change, .. }
                if change.target == seq && change.text.as_deref() == Some("hello"))
        })
    })
    .await;
}

#[tokio::test]
async fn editing_someone_elses_message_fails_once_with_its_code() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let hers = ada.client.send("general", "Ada's");
    ada.until_confirmed(std::slice::from_ref(&hers)).await;
    bob.until_messages("general", 1).await;
    let seq = bob.messages()[0].seq;
    let attempt = bob.client.edit("general", seq, "Bob's now");
    let fine = bob.client.send("general", "and this goes after it");
    bob.until_confirmed(std::slice::from_ref(&fine)).await;
    let failed: Vec<_> = bob
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Failed {
                local_id,
                error,
                resendable,
            } => Some((local_id.clone(), error.code, *resendable)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [(attempt, ErrorCode::Forbidden, false)]);
}
