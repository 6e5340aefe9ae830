"""The team inbox (issue 12): teams, routing, assignment, status, business hours, automatic
replies, canned replies and notes, as a feature module on the core's seams. Built in parts;
``bridge.app.FEATURES`` lists it once it is wired."""
