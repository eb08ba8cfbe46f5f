{{/* The operator image: repository:tag, or repository@digest for a sha256: tag. */}}
{{- define "pulp-operator.image" -}}
{{- if hasPrefix "sha256:" .Values.image.tag -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{/* WATCH_NAMESPACE: the watched namespaces, comma-separated; empty for all namespaces. */}}
{{- define "pulp-operator.watchNamespace" -}}
{{- if not .Values.watch.allNamespaces -}}
{{- .Values.watch.namespaces | default (list .Release.Namespace) | join "," -}}
{{- end -}}
{{- end -}}
