"""Refund approval: small refunds go through at once, larger ones wait for finance to decide."""

from loomwork import wf


async def execute_workflow(data):
    orders = await wf.queries.get_order.run(order_id=data["order_id"])
    if not orders:
        raise ValueError(f"no order {data['order_id']}")
    order = orders[0]
    wf.log.info("order loaded", amount=order["amount"], customer=order["customer"])

    if order["amount"] < 10:
        await wf.queries.issue_refund.run(order_id=order["id"], amount=order["amount"])
        await notify(order, "approved")
        return {"refunded": True, "approved_by": None}

    decision = await wf.assign_request(
        request_name="refund",
        message=f"Refund {order['amount']} to {order['customer']}?",
        resolutions=["Approve", "Reject"],
        to_groups=["finance"],
        metadata={"order": order},
        timeout=wf.days(3),
        on_timeout="Reject",
    )
    if decision.resolution == "Approve":
        await wf.queries.issue_refund.run(order_id=order["id"], amount=order["amount"])
    wf.log.info("decided", resolution=decision.resolution, by=decision.resolved_by)
    await notify(order, "approved" if decision.resolution == "Approve" else "declined")
    return {"refunded": decision.resolution == "Approve", "approved_by": decision.resolved_by}


async def notify(order, outcome):
    await wf.queries.notify_customer.run(
        email=order["email"],
        customer=order["customer"],
        order_id=order["id"],
        amount=order["amount"],
        outcome=outcome,
    )
