// What the page says while it follows the establishment after « Envoyer »: the French sentences
// for each status and each reason of an E2, the expected end in the school's local time, and
// the waits between two reads of GET /v1/upload/session. No DOM here: main.js shows the text.

// Waits between two reads (ms): soon at first, as a small mounting takes seconds, then backing
// off to a read every 15 s, as a large one takes many minutes. Failed reads back off the same way.
export const FIRST_POLL_MS = 2000
export const MAX_POLL_MS = 15000

export function nextDelay(previous) {
  if (!previous) return FIRST_POLL_MS
  return Math.min(MAX_POLL_MS, Math.round(previous * 1.5))
}

// Reasons an archive check or a mount gives (shared/src/archive/mod.rs, the workflows, the
// agent), as a school can act on them. Each completes "L'archive …" or stands alone.
const REASONS = {
  not_a_zip:
    "ce n'est pas une archive .zip lisible (elle est peut-être incomplète ou abîmée). " +
    'Refaites la sauvegarde dans BCDI.',
  archive_missing: "l'archive n'a pas été retrouvée sur le serveur. Envoyez-la de nouveau.",
  missing_notices_dat:
    "l'archive ne contient pas de fichier NOTICES.DAT ; ce n'est pas une sauvegarde de base " +
    'BCDI. Choisissez le fichier créé par la commande « Sauvegarder » de BCDI.',
  several_bases:
    "l'archive contient plusieurs bases. Envoyez une archive par base (une sauvegarde BCDI " +
    'par base).',
  unsafe_path: "l'archive contient des noms de fichiers non autorisés. Refaites la sauvegarde dans BCDI.",
  link_entry: "l'archive contient des liens ou des fichiers spéciaux. Refaites la sauvegarde dans BCDI.",
  encrypted_entry:
    "l'archive est protégée par un mot de passe. Refaites la sauvegarde dans BCDI, sans mot de passe.",
  duplicate_entry:
    "l'archive contient plusieurs fichiers du même nom. Refaites la sauvegarde dans BCDI.",
  too_many_entries: "l'archive contient trop de fichiers pour une base BCDI.",
  too_large: "l'archive est trop volumineuse une fois décompressée.",
  suspicious_ratio:
    "l'archive a une structure anormale et a été refusée par sécurité. Refaites la sauvegarde dans BCDI.",
  overlapping_entries:
    "l'archive a une structure anormale et a été refusée par sécurité. Refaites la sauvegarde dans BCDI.",
  unsupported_compression:
    "l'archive utilise un mode de compression que le serveur ne lit pas. Refaites la sauvegarde " +
    'avec la commande « Sauvegarder » de BCDI.',
  corrupt_entry: "l'archive est abîmée. Refaites la sauvegarde dans BCDI.",
  mount_timeout:
    "l'installation a pris trop de temps et a été interrompue. Envoyez de nouveau vos archives ; " +
    "si cela se reproduit, contactez l'assistance de la Cyberlibrairie.",
  no_base_mounted:
    "aucune des bases envoyées n'a pu être installée. Vérifiez qu'il s'agit bien des sauvegardes " +
    'BCDI (fichiers .zip) puis envoyez-les de nouveau.',
}

const GENERIC_REASON =
  "l'installation de vos bases n'a pas abouti. Envoyez de nouveau vos archives ; si cela se " +
  "reproduit, contactez l'assistance de la Cyberlibrairie."

// The French explanation of a reason code, with a capital letter when it stands alone.
export function reasonSentence(reason) {
  const text = REASONS[reason] ?? GENERIC_REASON
  return text.charAt(0).toUpperCase() + text.slice(1)
}

// "15 h 30", "15 h": how French prose writes a time of day.
function frenchHour(date) {
  const parts = new Intl.DateTimeFormat('fr-FR', { hour: 'numeric', minute: '2-digit' }).formatToParts(
    date,
  )
  const hour = parts.find((part) => part.type === 'hour')?.value
  const minute = parts.find((part) => part.type === 'minute')?.value
  return minute === '00' ? `${hour} h` : `${hour} h ${minute}`
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()
}

// When mounting should be done, in the local time of the school's computer: "vers 15 h 30",
// "demain vers 9 h", "le mardi 8 décembre vers 9 h"; null when that moment has passed.
export function expectedEnd(unixSeconds, now = new Date()) {
  if (typeof unixSeconds !== 'number' || !Number.isFinite(unixSeconds)) return null
  const at = new Date(unixSeconds * 1000)
  if (at <= now) return null
  const tomorrow = new Date(now)
  tomorrow.setDate(now.getDate() + 1)
  if (sameDay(at, now)) return `vers ${frenchHour(at)}`
  if (sameDay(at, tomorrow)) return `demain vers ${frenchHour(at)}`
  const day = new Intl.DateTimeFormat('fr-FR', { weekday: 'long', day: 'numeric', month: 'long' }).format(at)
  return `le ${day} vers ${frenchHour(at)}`
}

const MOUNTING_TITLE = 'Vos bases ont été reçues ; vérification et installation en cours…'

// What the page shows for the establishment's state `progress` (GET /v1/upload/session's
// `establishment`, or the answer of POST /v1/upload/submit), and the names of the archives by
// file id. Gives { state, title, lines } where state is "mounting", "ready" or "failed".
export function describe(progress, fileNames = new Map(), now = new Date()) {
  const status = progress?.status
  const bases = Array.isArray(progress?.bases) ? progress.bases : []
  const label = (base) => {
    const file = fileNames.get(base.id)
    return file ? `« ${base.name} » (${file})` : `« ${base.name} »`
  }
  if (status === '4') {
    const installed = bases.filter((base) => base.state === 'INSTALLED').map((base) => `« ${base.name} »`)
    const broken = bases.filter((base) => base.state === 'ERROR')
    const lines = [progress?.message || 'Votre serveur BCDI est prêt : vos bases sont installées.']
    if (installed.length > 0) {
      lines.push(`${installed.length > 1 ? 'Bases installées' : 'Base installée'} : ${installed.join(', ')}.`)
    }
    for (const base of broken) {
      lines.push(
        `La base ${label(base)} n'a pas pu être installée : vous pouvez en envoyer une nouvelle sauvegarde.`,
      )
    }
    return { state: 'ready', title: "C'est terminé : votre serveur BCDI est prêt.", lines }
  }
  if (status === 'E2') {
    const reason = progress?.error?.reason
    const broken = bases.filter((base) => base.state === 'ERROR')
    const lines = []
    if (broken.length === 1 && reason !== 'no_base_mounted') {
      lines.push(`Base ${label(broken[0])} : ${REASONS[reason] ?? GENERIC_REASON}`)
    } else {
      lines.push(reasonSentence(reason))
      if (broken.length > 0) lines.push(`Bases en cause : ${broken.map(label).join(', ')}.`)
    }
    lines.push(
      "Pour recommencer : supprimez l'archive en cause dans la liste « Archives reçues », " +
        'ajoutez la bonne sauvegarde, transférez-la, puis cliquez de nouveau sur « Envoyer ».',
    )
    return { state: 'failed', title: "Vos bases n'ont pas pu être installées.", lines }
  }
  const end = expectedEnd(progress?.timestamp, now)
  const lines = [
    end ? `Fin prévue ${end}.` : progress?.timestamp ? 'Cela prend un peu plus de temps que prévu.' : '',
    'Cette page affichera le résultat. Vous pouvez aussi la fermer : la Cyberlibrairie ' +
      "affiche l'état de votre serveur.",
  ].filter(Boolean)
  return { state: 'mounting', title: MOUNTING_TITLE, lines }
}
