//! Unread counts through the client against a real server: two clients of one user (a laptop
//! and a phone, the same token) agree on what is unread, live and after a reconnect.

mod support;

use causerie_client::{ClientConfig, ClientEvent, Unread};
use support::{Recorded, TestServer, test_config};

/// The latest unread state told for `room`.
fn unread_of<'a>(log: &'a [ClientEvent], room: &str) -> Option<&'a Unread> {
    log.iter().rev().find_map(|event| match event {
        ClientEvent::Unread(unread) if unread.room == room => Some(unread),
        _ => None,
    })
}

fn count_is(log: &[ClientEvent], count: u32) -> bool {
    unread_of(log, "general").is_some_and(|unread| unread.count == count)
}

#[tokio::test]
async fn a_laptop_and_a_phone_of_one_user_agree_on_what_is_unread() {
    let server = TestServer::start().await;
    let mut laptop = Recorded::connect(&server.url(), "Ada").await;
    let token = laptop
        .log
        .iter()
        .find_map(|e| match e {
            ClientEvent::Welcome(session) => Some(session.token.clone()),
            _ => None,
        })
        .expect("a welcome");
    let mut phone = Recorded::start(ClientConfig {
        token: Some(token.clone()),
        ..test_config(&server.url(), "Ada")
    });
    phone.until_connected().await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;

    let sent: Vec<_> = (1..=3)
        .map(|i| bob.client.send("general", &format!("news {i}")))
        .collect();
    bob.until_confirmed(&sent).await;
    laptop
        .until("three unread on the laptop", |log| count_is(log, 3))
        .await;
    phone
        .until("three unread on the phone", |log| count_is(log, 3))
        .await;

    // Ada reads two of them on her laptop: her phone follows.
    let second = laptop.messages()[1].seq;
    laptop.client.mark_read("general", second);
    laptop
        .until("one unread on the laptop", |log| count_is(log, 1))
        .await;
    phone
        .until("the phone hears of it", |log| {
            unread_of(log, "general").is_some_and(|u| (u.read, u.count) == (second, 1))
        })
        .await;

    // A third device, later, starts from the same marker.
    let mut tablet = Recorded::start(ClientConfig {
        token: Some(token),
        ..test_config(&server.url(), "Ada")
    });
    tablet.until_connected().await;
    tablet
        .until("the tablet starts where Ada is", |log| {
            unread_of(log, "general").is_some_and(|u| (u.read, u.count) == (second, 1))
        })
        .await;
}
