/** A location safe to print: any user:password@ part of a URL is removed. Never throws. */
export function describeLocation(location: string): string {
  if (typeof location !== 'string') return String(location);
  // s3://user:secret@bucket/...  and  s3:https://user:secret@host/...  and  https://user:secret@host
  return location.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?\/\/)[^/?#]*@/, (_m, head: string) => head);
}

