"""What each runner reports of itself through the database (device, models, jobs held, rates,
state), for the operations page: runners write their row at every heartbeat, the web reads."""
