/**
 * ISO 4217 currencies in circulation and their minor-unit exponents. Kept as our own table rather than
 * Intl's: Intl accepts any three letters and also knows withdrawn currencies, and a payment API must refuse
 * both.
 */
const ZERO_DECIMALS = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF';
const THREE_DECIMALS = 'BHD IQD JOD KWD LYD OMR TND';
const FOUR_DECIMALS = 'CLF UYW';
const TWO_DECIMALS =
  'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF ' +
  'CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD ' +
  'HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT ' +
  'MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR ' +
  'SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU ' +
  'UZS VED VES WST XCD XCG YER ZAR ZMW ZWG';

const EXPONENTS: ReadonlyMap<string, number> = new Map([
  ...ZERO_DECIMALS.split(' ').map((code) => [code, 0] as const),
  ...TWO_DECIMALS.split(' ').map((code) => [code, 2] as const),
  ...THREE_DECIMALS.split(' ').map((code) => [code, 3] as const),
  ...FOUR_DECIMALS.split(' ').map((code) => [code, 4] as const),
]);

export function isKnownCurrency(code: string): boolean {
  return EXPONENTS.has(code);
}

/** Digits after the decimal point: JPY 0, USD 2, KWD 3. Undefined for an unknown code. */
export function minorUnitExponent(code: string): number | undefined {
  return EXPONENTS.get(code);
}

export function knownCurrencies(): string[] {
  return [...EXPONENTS.keys()].sort();
}

/**
 * The largest amount in minor units per currency for a limit given in major units (2 decimals when the
 * currency is unknown); memoised per currency.
 */
export function maxPaymentMinorFor(maxMajorUnits: bigint): (currency: string) => bigint {
  const cache = new Map<string, bigint>();
  return (currency) => {
    let max = cache.get(currency);
    if (max === undefined) {
      max = maxMajorUnits * 10n ** BigInt(minorUnitExponent(currency) ?? 2);
      cache.set(currency, max);
    }
    return max;
  };
}
