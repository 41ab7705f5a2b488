CREATE TABLE `topups` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`event_id` text NOT NULL,
	`payment_intent_id` text,
	`amount_cents` integer NOT NULL,
	`currency` text NOT NULL,
	`amount_micros` integer NOT NULL,
	`ledger_id` integer,
	`customer_email` text,
	`refunded_cents` integer DEFAULT 0 NOT NULL,
	`refund_debited_micros` integer DEFAULT 0 NOT NULL,
	`paid_at` integer NOT NULL,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `topups_event_uq` ON `topups` (`event_id`);--> statement-breakpoint
CREATE INDEX `topups_org_idx` ON `topups` (`org_id`,`paid_at`);--> statement-breakpoint
CREATE INDEX `topups_payment_intent_idx` ON `topups` (`payment_intent_id`);