CREATE TABLE "refunds" (
	"id" text PRIMARY KEY NOT NULL,
	"payment_id" text NOT NULL,
	"amount_minor" bigint NOT NULL,
	"currency" text NOT NULL,
	"status" text NOT NULL,
	"decline_reason" text,
	"reason" text DEFAULT '' NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "refunds_amount_positive" CHECK ("refunds"."amount_minor" > 0),
	CONSTRAINT "refunds_status_known" CHECK ("refunds"."status" in ('COMPLETED', 'DECLINED'))
);
--> statement-breakpoint
CREATE TABLE "settlements" (
	"id" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"currency" text NOT NULL,
	"payment_count" integer NOT NULL,
	"gross_minor" bigint NOT NULL,
	"refunds_minor" bigint NOT NULL,
	"net_minor" bigint NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "settlements_net_is_gross_minus_refunds" CHECK ("settlements"."net_minor" = "settlements"."gross_minor" - "settlements"."refunds_minor"),
	CONSTRAINT "settlements_amounts_not_negative" CHECK ("settlements"."net_minor" >= 0 and "settlements"."refunds_minor" >= 0)
);
--> statement-breakpoint
ALTER TABLE "account_balances" DROP CONSTRAINT "account_balances_available_not_negative";--> statement-breakpoint
ALTER TABLE "account_balances" ADD COLUMN "pending_settlement_minor" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "accounts" ADD COLUMN "type" text DEFAULT 'PERSONAL' NOT NULL;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "bucket" text DEFAULT 'AVAILABLE' NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "capture_mode" text DEFAULT 'AUTOMATIC' NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "captured_minor" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "refunded_minor" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "expires_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "awaits_settlement" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "settlement_id" text;--> statement-breakpoint
-- Payments completed before capture modes existed moved their whole amount at once.
UPDATE "payments" SET "captured_minor" = "amount_minor" WHERE "status" = 'COMPLETED';--> statement-breakpoint
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_payment_id_payments_id_fk" FOREIGN KEY ("payment_id") REFERENCES "public"."payments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "settlements" ADD CONSTRAINT "settlements_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "refunds_payment_idx" ON "refunds" USING btree ("payment_id");--> statement-breakpoint
CREATE INDEX "settlements_account_idx" ON "settlements" USING btree ("account_id","id");--> statement-breakpoint
CREATE INDEX "payments_hold_expiry_idx" ON "payments" USING btree ("expires_at") WHERE "payments"."status" = 'AUTHORIZED';--> statement-breakpoint
CREATE INDEX "payments_unsettled_idx" ON "payments" USING btree ("payee_account_id","id") WHERE "payments"."awaits_settlement" and "payments"."settlement_id" is null;--> statement-breakpoint
CREATE INDEX "payments_settlement_idx" ON "payments" USING btree ("settlement_id");--> statement-breakpoint
ALTER TABLE "account_balances" ADD CONSTRAINT "account_balances_pending_not_negative" CHECK ("account_balances"."pending_settlement_minor" >= 0);--> statement-breakpoint
ALTER TABLE "account_balances" ADD CONSTRAINT "account_balances_available_not_negative" CHECK ("account_balances"."allow_negative" or "account_balances"."posted_minor" - "account_balances"."held_minor" - "account_balances"."pending_settlement_minor" >= 0);--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_type_known" CHECK ("accounts"."type" in ('PERSONAL', 'MERCHANT'));--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_bucket_known" CHECK ("ledger_entries"."bucket" in ('AVAILABLE', 'HELD', 'PENDING_SETTLEMENT'));--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_status_known" CHECK ("payments"."status" in ('COMPLETED', 'DECLINED', 'AUTHORIZED', 'VOIDED', 'EXPIRED', 'PARTIALLY_REFUNDED', 'REFUNDED'));--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_amounts_consistent" CHECK ("payments"."captured_minor" >= 0 and "payments"."captured_minor" <= "payments"."amount_minor" and "payments"."refunded_minor" >= 0 and "payments"."refunded_minor" <= "payments"."captured_minor");