// Sizes as a French reader expects them ("16,3 Mo"), in powers of 1024 like the Windows
// Explorer the schools use. scripts/build-assets also puts this in place of Uppy's English
// formatter (@transloadit/prettier-bytes), so the Dashboard speaks the same units as the page.

const UNITS = ['octets', 'Ko', 'Mo', 'Go', 'To']

export default function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return ''
  let value = Math.abs(bytes)
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit += 1
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1
  const text = value.toLocaleString('fr-FR', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  })
  return `${bytes < 0 ? '-' : ''}${text}\u00a0${UNITS[unit]}`
}
