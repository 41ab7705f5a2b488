/** The API key test/support/fake-stripe.ts refuses (401, as Stripe refuses a revoked key). Import-free, so workerd tests can load it. */
export const REFUSED_STRIPE_KEY = 'sk_test_refused';
