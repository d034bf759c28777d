/** JSON value types for checkpoint metadata (what `JSON.stringify` writes and `JSON.parse` returns). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Sets `key` as an own data property. Plain assignment with a key such as `__proto__` (which a
 * checkpoint may contain) would change the object's prototype instead.
 */
export function defineField<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
