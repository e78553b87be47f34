//! Turning what the engine did into what is stored and published: order
//! rows, match rows, feed events and notification texts.

use std::sync::Arc;

use bidask_engine::{CancelReason, Event, OrderId, OrderStatus, Price, Side, UserId};
use bidask_store::{MatchRecord, OrderRecord};

use super::{Actor, side_name, ticks};
use crate::feed::{
    Best, Channel, FeedBody, LevelUpdated, OrderUpdated, PendingEvent, PriceDrop, PublicMatch,
    UserMatch,
};

/// The results of one command, before they become a writer `Unit`.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) orders: Vec<OrderRecord>,
    pub(super) matches: Vec<MatchRecord>,
    pub(super) events: Vec<PendingEvent>,
}

impl Actor {
    /// Turns engine events into rows and feed events, keeping `live` in step.
    pub(super) fn translate(&mut self, events: &[Event], now: i64) -> Outcome {
        let product = Arc::clone(&self.product);
        let mut outcome = Outcome::default();
        let mut touched: Vec<i64> = Vec::new();
        // The lowest ask of each market whose asks changed, as it stood
        // before the command: a price drop compares the command's end with
        // its start, since an amendment passes through a book without the
        // order (removed, then rested at its new price).
        let mut asks_before: Vec<(u16, Option<Price>)> = Vec::new();
        for event in events {
            match *event {
                Event::Accepted(order) => touched.push(order_key(order.id)),
                Event::Trade(trade) => {
                    let match_id = self.ids.matches();
                    let quantity = i64::from(trade.quantity);
                    for id in [trade.maker_order, trade.taker_order] {
                        if let Some(record) = self.live.get_mut(&order_key(id)) {
                            record.remaining_quantity -= quantity;
                        }
                        touched.push(order_key(id));
                    }
                    let (bid_order, buyer) = trade.buyer();
                    let (ask_order, seller) = trade.seller();
                    let size = product.size(i64::from(trade.market.0)).to_owned();
                    let price = product.format_price(trade.price);
                    outcome.matches.push(MatchRecord {
                        id: match_id,
                        product_id: product.id,
                        market: i64::from(trade.market.0),
                        price_ticks: ticks(trade.price),
                        quantity,
                        bid_order_id: order_key(bid_order),
                        ask_order_id: order_key(ask_order),
                        buyer_id: user_key(buyer),
                        seller_id: user_key(seller),
                        taker_side: side_name(trade.taker_side).to_owned(),
                        created_at: now,
                    });
                    outcome.events.push(PendingEvent {
                        channel: Channel::Product(product.id),
                        body: FeedBody::PublicMatch(PublicMatch {
                            match_id,
                            product_id: product.id,
                            size: size.clone(),
                            price: price.clone(),
                            quantity: trade.quantity,
                            taker_side: side_name(trade.taker_side),
                            market: trade.market.0,
                            ticks: trade.price.ticks(),
                        }),
                    });
                    for (role, order, user) in
                        [("seller", ask_order, seller), ("buyer", bid_order, buyer)]
                    {
                        let message = if role == "seller" {
                            format!("Your {} (size {size}) sold for ${price}!", product.name)
                        } else {
                            format!("You bought {} (size {size}) for ${price}!", product.name)
                        };
                        outcome.events.push(PendingEvent {
                            channel: Channel::User(user_key(user)),
                            body: FeedBody::UserMatch(UserMatch {
                                match_id,
                                notification_id: 0,
                                role,
                                order_id: order_key(order),
                                product_id: product.id,
                                size: size.clone(),
                                price: price.clone(),
                                quantity: trade.quantity,
                                message,
                                user_id: user_key(user),
                            }),
                        });
                    }
                }
                Event::OrderUpdated(update) => {
                    let id = order_key(update.order);
                    touched.push(id);
                    let Some(record) = self.live.get_mut(&id) else {
                        continue;
                    };
                    let (status, reason) = status_names(update.status);
                    record.status = status.to_owned();
                    record.cancel_reason = reason.map(str::to_owned);
                    if matches!(
                        update.status,
                        OrderStatus::Open | OrderStatus::PartiallyFilled | OrderStatus::Filled
                    ) {
                        record.remaining_quantity = i64::from(update.remaining);
                    }
                    outcome.events.push(PendingEvent {
                        channel: Channel::User(user_key(update.user)),
                        body: FeedBody::OrderUpdated(OrderUpdated {
                            order_id: id,
                            product_id: product.id,
                            size: product.size(record.market).to_owned(),
                            side: side_name(update.side),
                            status,
                            remaining_quantity: u32::try_from(record.remaining_quantity)
                                .unwrap_or(0),
                            cancel_reason: reason,
                        }),
                    });
                }
                Event::Amended(amended) => {
                    let id = order_key(amended.order);
                    touched.push(id);
                    let priority = amended.requeued.then(|| self.ids.priority());
                    if let Some(record) = self.live.get_mut(&id) {
                        record.price_ticks = ticks(amended.price);
                        record.quantity = i64::from(amended.quantity.units());
                        record.remaining_quantity = i64::from(amended.remaining);
                        if let Some(priority) = priority {
                            record.priority = priority;
                        }
                    }
                }
                Event::LevelChanged(change) => {
                    let market = change.market.0;
                    if change.side == Side::Ask
                        && let Some(slot) = self.lowest_asks.get_mut(usize::from(market))
                    {
                        if !asks_before.iter().any(|(seen, _)| *seen == market) {
                            asks_before.push((market, *slot));
                        }
                        *slot = change.best.map(|best| best.price);
                    }
                    outcome.events.push(PendingEvent {
                        channel: Channel::Product(product.id),
                        body: FeedBody::Level(LevelUpdated {
                            product_id: product.id,
                            market,
                            size: product.size(i64::from(market)).to_owned(),
                            side: change.side,
                            ticks: change.price.ticks(),
                            price: product.format_price(change.price),
                            quantity: change.quantity,
                            orders: change.orders,
                            best: change.best.map(|best| Best {
                                price: product.format_price(best.price),
                                quantity: best.quantity,
                                ticks: best.price.ticks(),
                            }),
                        }),
                    });
                }
            }
        }
        for (market, before) in asks_before {
            let after = self.lowest_asks.get(usize::from(market)).copied().flatten();
            if let (Some(old), Some(new)) = (before, after)
                && new < old
            {
                outcome.events.push(PendingEvent {
                    channel: Channel::Products,
                    body: FeedBody::PriceDrop(PriceDrop {
                        product_id: product.id,
                        size: product.size(i64::from(market)).to_owned(),
                        old_price: product.format_price(old),
                        new_price: product.format_price(new),
                    }),
                });
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(touched.len());
        for id in touched {
            if !seen.insert(id) {
                continue;
            }
            let Some(record) = self.live.get_mut(&id) else {
                continue;
            };
            record.updated_at = now;
            let record = record.clone();
            if matches!(record.status.as_str(), "open" | "partially_filled") {
                self.resting.insert(id, product.id);
            } else {
                self.forget(id);
                self.resting.remove(id);
            }
            outcome.orders.push(record);
        }
        outcome
    }
}

pub(super) fn order_key(id: OrderId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

pub(super) fn user_key(id: UserId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// The status and cancel reason words of the API.
fn status_names(status: OrderStatus) -> (&'static str, Option<&'static str>) {
    match status {
        OrderStatus::Open => ("open", None),
        OrderStatus::PartiallyFilled => ("partially_filled", None),
        OrderStatus::Filled => ("filled", None),
        OrderStatus::Expired => ("expired", None),
        OrderStatus::Cancelled(reason) => (
            "cancelled",
            Some(match reason {
                CancelReason::Requested => "requested",
                CancelReason::SelfTrade => "self_trade",
                CancelReason::ImmediateOrCancel => "immediate_or_cancel",
                CancelReason::FillOrKill => "fill_or_kill",
            }),
        ),
    }
}
