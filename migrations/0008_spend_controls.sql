CREATE TABLE `alert_events` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`type` text NOT NULL,
	`key_id` text,
	`payload` text NOT NULL,
	`created_at` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_status` integer,
	`last_error` text,
	`delivered_at` integer
);
--> statement-breakpoint
CREATE INDEX `alert_events_org_idx` ON `alert_events` (`org_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `key_budgets` (
	`key_id` text PRIMARY KEY NOT NULL,
	`limit_micros` integer NOT NULL,
	`period` text NOT NULL,
	`time_zone` text DEFAULT 'UTC' NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`key_id`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `key_model_allowlists` (
	`key_id` text PRIMARY KEY NOT NULL,
	`models` text NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`key_id`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `org_alert_settings` (
	`org_id` text PRIMARY KEY NOT NULL,
	`webhook_url` text NOT NULL,
	`webhook_secret` text NOT NULL,
	`balance_below_micros` integer,
	`key_budget_percent` integer,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
ALTER TABLE `key_limits` ADD `tpd` integer;--> statement-breakpoint
ALTER TABLE `org_limits` ADD `tpd` integer;